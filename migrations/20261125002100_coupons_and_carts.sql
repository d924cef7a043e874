-- Coupons with global and per-user use limits, and one cart per user.

CREATE TABLE coupons (
    id                 uuid PRIMARY KEY,
    -- Stored upper-cased; unique case-insensitively among live coupons.
    code               text NOT NULL CONSTRAINT coupons_code_format CHECK (code ~ '^[A-Za-z0-9_-]{2,40}$'),
    kind               text NOT NULL CONSTRAINT coupons_kind_check CHECK (kind IN ('percent', 'fixed')),
    -- percent: 1..100; fixed: centavos off the subtotal (never below zero).
    value              bigint NOT NULL,
    min_subtotal_cents bigint NOT NULL DEFAULT 0 CONSTRAINT coupons_min_subtotal_not_negative CHECK (min_subtotal_cents >= 0),
    max_uses           integer CONSTRAINT coupons_max_uses_positive CHECK (max_uses > 0),
    max_uses_per_user  integer CONSTRAINT coupons_max_uses_per_user_positive CHECK (max_uses_per_user > 0),
    uses               integer NOT NULL DEFAULT 0 CONSTRAINT coupons_uses_not_negative CHECK (uses >= 0),
    starts_at          timestamptz,
    ends_at            timestamptz,
    active             boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    CONSTRAINT coupons_value_range CHECK (
        (kind = 'percent' AND value BETWEEN 1 AND 100) OR (kind = 'fixed' AND value > 0)
    ),
    CONSTRAINT coupons_window_order CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at),
    -- The global limit holds even against a writer that skips the conditional update.
    CONSTRAINT coupons_uses_within_limit CHECK (max_uses IS NULL OR uses <= max_uses)
);

CREATE UNIQUE INDEX coupons_code_key ON coupons (lower(code)) WHERE deleted_at IS NULL;

-- How often each user has redeemed each coupon; updated conditionally, so the per-user limit
-- holds under concurrency (the row lock serialises a user's concurrent checkouts).
CREATE TABLE coupon_user_uses (
    coupon_id uuid NOT NULL REFERENCES coupons (id),
    user_id   uuid NOT NULL REFERENCES users (id),
    uses      integer NOT NULL CONSTRAINT coupon_user_uses_not_negative CHECK (uses >= 0),
    PRIMARY KEY (coupon_id, user_id)
);

-- One row per order that used a coupon; `released_at` makes release happen exactly once.
-- (order_id gets its foreign key with the orders table.)
CREATE TABLE coupon_redemptions (
    order_id    uuid PRIMARY KEY,
    coupon_id   uuid NOT NULL REFERENCES coupons (id),
    user_id     uuid NOT NULL REFERENCES users (id),
    redeemed_at timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);

CREATE INDEX coupon_redemptions_coupon_idx ON coupon_redemptions (coupon_id);

CREATE TABLE carts (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Cleared when the coupon is deleted; re-checked against its rules on every read.
    coupon_id  uuid REFERENCES coupons (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Bumped by every change; abandoned carts are purged by age of this column.
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX carts_updated_at_idx ON carts (updated_at);

CREATE TABLE cart_items (
    user_id    uuid NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    product_id uuid NOT NULL REFERENCES products (id),
    quantity   integer NOT NULL CONSTRAINT cart_items_quantity_positive CHECK (quantity > 0),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, product_id)
);

-- Removing a product from every cart when it is deleted.
CREATE INDEX cart_items_product_idx ON cart_items (product_id);
