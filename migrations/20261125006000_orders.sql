-- Orders, their item snapshots, their audit trail, and the Idempotency-Key store.
--
-- product_id and coupon_id are plain uuid columns here: the products and coupons tables
-- belong to a migration not yet written when this one was; foreign keys to them are added
-- by a later migration. Users are never deleted (erasure anonymises), so orders keep theirs.

CREATE TABLE orders (
    id uuid PRIMARY KEY,
    -- Human-friendly and public (tracking page): random, so it does not reveal sales volume
    -- and cannot be enumerated.
    number text NOT NULL CONSTRAINT orders_number_key UNIQUE
        CONSTRAINT orders_number_format CHECK (number ~ '^CART-[0-9A-HJKMNP-TV-Z]{8}$'),
    user_id uuid NOT NULL CONSTRAINT orders_user_id_fkey REFERENCES users (id),
    status text NOT NULL DEFAULT 'pending_payment'
        CONSTRAINT orders_status_check CHECK (status IN
            ('pending_payment', 'processing', 'shipped', 'delivered', 'cancelled')),
    payment_status text NOT NULL DEFAULT 'pending_payment'
        CONSTRAINT orders_payment_status_check CHECK (payment_status IN
            ('pending_payment', 'paid', 'failed', 'expired', 'refund_pending', 'refunded')),
    -- The pairs that may exist (the state machine in core/src/orders/status.rs): an order is
    -- worked on only once paid, and a cancelled one never waits for a payment.
    CONSTRAINT orders_status_payment_consistent CHECK (
        (status = 'pending_payment' AND payment_status IN ('pending_payment', 'failed'))
        OR (status IN ('processing', 'shipped', 'delivered') AND payment_status = 'paid')
        OR (status = 'cancelled' AND payment_status IN ('expired', 'refund_pending', 'refunded'))
    ),

    subtotal_cents bigint NOT NULL CONSTRAINT orders_subtotal_nonnegative CHECK (subtotal_cents >= 0),
    discount_cents bigint NOT NULL DEFAULT 0
        CONSTRAINT orders_discount_range CHECK (discount_cents >= 0 AND discount_cents <= subtotal_cents),
    shipping_cents bigint NOT NULL CONSTRAINT orders_shipping_nonnegative CHECK (shipping_cents >= 0),
    total_cents bigint NOT NULL CONSTRAINT orders_total_nonnegative CHECK (total_cents >= 0),
    CONSTRAINT orders_total_matches
        CHECK (total_cents = subtotal_cents - discount_cents + shipping_cents),

    -- Coupon snapshot: the code as applied, and the discount it gave (discount_cents).
    coupon_id uuid,
    coupon_code text,
    CONSTRAINT orders_coupon_snapshot CHECK ((coupon_id IS NULL) = (coupon_code IS NULL)),

    -- Shipping snapshot: what was quoted and chosen at checkout, and where it goes.
    shipping_carrier text NOT NULL,
    shipping_service text NOT NULL,
    shipping_days integer NOT NULL CONSTRAINT orders_shipping_days_nonnegative CHECK (shipping_days >= 0),
    -- {label, recipient, cep, street, number, complement, district, city, state}
    shipping_address jsonb NOT NULL
        CONSTRAINT orders_shipping_address_object CHECK (jsonb_typeof(shipping_address) = 'object'),
    -- The buyer's CPF at checkout, for the NF-e (11 digits).
    recipient_cpf text NOT NULL CONSTRAINT orders_recipient_cpf_format CHECK (recipient_cpf ~ '^[0-9]{11}$'),

    -- Set when the order ships.
    tracking_number text,
    carrier text,
    CONSTRAINT orders_tracking_when_shipped
        CHECK (status NOT IN ('shipped', 'delivered') OR tracking_number IS NOT NULL),

    -- Payment deadline of an unpaid order (ORDER_PAYMENT_TTL after checkout).
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- "My orders, newest first" and the admin list (ids are UUIDv7, so id order is creation order).
CREATE INDEX orders_user_created_idx ON orders (user_id, created_at DESC, id DESC);
CREATE INDEX orders_created_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_status_created_idx ON orders (status, created_at DESC, id DESC);
-- The expiry ticker only ever looks at unpaid orders.
CREATE INDEX orders_pending_expiry_idx ON orders (expires_at) WHERE status = 'pending_payment';
CREATE INDEX orders_coupon_idx ON orders (coupon_id) WHERE coupon_id IS NOT NULL;

CREATE TABLE order_items (
    order_id uuid NOT NULL REFERENCES orders (id),
    product_id uuid NOT NULL,
    -- Snapshots at checkout: later catalog edits never change an order.
    sku text NOT NULL,
    name text NOT NULL,
    unit_price_cents bigint NOT NULL CONSTRAINT order_items_unit_price_nonnegative CHECK (unit_price_cents >= 0),
    quantity integer NOT NULL CONSTRAINT order_items_quantity_positive CHECK (quantity > 0),
    line_total_cents bigint NOT NULL
        CONSTRAINT order_items_line_total_matches CHECK (line_total_cents = unit_price_cents * quantity),
    -- For the NF-e: the product's NCM code and weight at checkout.
    ncm text,
    weight_grams integer CONSTRAINT order_items_weight_nonnegative CHECK (weight_grams >= 0),
    PRIMARY KEY (order_id, product_id)
);

CREATE INDEX order_items_product_idx ON order_items (product_id);

-- Every status or payment-status change of an order, with who did it and why.
CREATE TABLE order_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id),
    -- NULL on the event that creates the order.
    from_status text,
    to_status text NOT NULL,
    from_payment_status text,
    to_payment_status text NOT NULL,
    -- A user id, or 'system' for the ticker, jobs and webhooks.
    actor text NOT NULL CONSTRAINT order_events_actor_nonempty CHECK (actor <> ''),
    reason text,
    request_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX order_events_order_idx ON order_events (order_id, id);

-- Idempotency-Key store for POST routes: the first answer to a (user, route, key) is kept
-- for 24 h and replayed to repeats with the same body.
CREATE TABLE idempotency_keys (
    user_id uuid NOT NULL CONSTRAINT idempotency_keys_user_id_fkey REFERENCES users (id),
    -- The concrete route, e.g. 'POST /api/orders' or 'POST /api/orders/<id>/pay'.
    route text NOT NULL,
    key text NOT NULL CONSTRAINT idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
    -- SHA-256 (hex) of the request body in canonical form.
    request_hash text NOT NULL,
    status text NOT NULL CONSTRAINT idempotency_keys_status_check CHECK (status IN ('in_progress', 'done')),
    response_status smallint,
    response_body jsonb,
    -- Headers the replay must repeat (e.g. Location), as {"name": "value"}.
    response_headers jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT idempotency_keys_done_has_response
        CHECK (status = 'in_progress' OR response_status IS NOT NULL),
    -- When the current attempt took the key; an attempt that died is taken over after a while.
    locked_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, route, key)
);

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
