-- Checkout counts the buyer's unpaid orders (MAX_UNPAID_ORDERS) inside its transaction: an
-- index of just those keeps the count a few index entries, whatever the order history.
CREATE INDEX orders_unpaid_user_idx ON orders (user_id) WHERE status = 'pending_payment';
