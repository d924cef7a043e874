-- The catalog tables exist now: order lines and orders point at the product and coupon they
-- were made from. Products and coupons are only ever soft-deleted, so these keys never block
-- the admin API; they stop a hard delete from orphaning the fiscal record of a sale.
ALTER TABLE order_items
    ADD CONSTRAINT order_items_product_id_fkey FOREIGN KEY (product_id) REFERENCES products (id);
ALTER TABLE orders
    ADD CONSTRAINT orders_coupon_id_fkey FOREIGN KEY (coupon_id) REFERENCES coupons (id);
