-- Public tracking finds an order by the carrier's tracking code (what the shipment e-mail
-- gives the buyer) as well as by its number, in any case.
CREATE INDEX orders_tracking_code_idx ON orders (upper(tracking_number))
    WHERE tracking_number IS NOT NULL;
