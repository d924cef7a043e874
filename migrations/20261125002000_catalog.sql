-- Catalog: categories (a tree) and products (soft-deleted), with full-text and trigram search
-- and cache invalidation broadcast on every change.

CREATE TABLE categories (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CONSTRAINT categories_name_length CHECK (length(btrim(name)) BETWEEN 1 AND 120),
    slug        text NOT NULL CONSTRAINT categories_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    description text NOT NULL DEFAULT '' CONSTRAINT categories_description_length CHECK (length(description) <= 2000),
    -- RESTRICT: a category with subcategories cannot be deleted.
    parent_id   uuid CONSTRAINT categories_parent_id_fkey REFERENCES categories (id) ON DELETE RESTRICT,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT categories_slug_key UNIQUE (slug),
    CONSTRAINT categories_not_own_parent CHECK (parent_id <> id)
);

CREATE INDEX categories_parent_id_idx ON categories (parent_id);

-- No cycles in the tree (a new row cannot be anyone's parent yet, so only moves are checked).
-- Writers that change a parent serialise on an advisory lock, so two
-- concurrent moves (A under B, B under A) cannot each pass the check against the old tree:
-- the second one waits and then sees the first (plpgsql statements take fresh snapshots).
CREATE FUNCTION categories_reject_cycles() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.parent_id IS NULL THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('categories_tree'));
    IF EXISTS (
        WITH RECURSIVE ancestors(id, depth) AS (
            SELECT NEW.parent_id, 1
            UNION ALL
            SELECT c.parent_id, a.depth + 1
            FROM categories c JOIN ancestors a ON c.id = a.id
            WHERE c.parent_id IS NOT NULL AND a.depth < 1000
        )
        SELECT 1 FROM ancestors WHERE id = NEW.id
    ) THEN
        RAISE EXCEPTION 'category % cannot be its own ancestor', NEW.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'categories_no_cycle';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER categories_reject_cycles
    BEFORE UPDATE OF parent_id ON categories
    FOR EACH ROW EXECUTE FUNCTION categories_reject_cycles();

CREATE TABLE products (
    id           uuid PRIMARY KEY,
    sku          text NOT NULL CONSTRAINT products_sku_format CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    name         text NOT NULL CONSTRAINT products_name_length CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    slug         text NOT NULL CONSTRAINT products_slug_format CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    description  text NOT NULL DEFAULT '' CONSTRAINT products_description_length CHECK (length(description) <= 20000),
    price_cents  bigint NOT NULL CONSTRAINT products_price_positive CHECK (price_cents > 0),
    -- The last line of defence for stock: writers also use conditional updates.
    stock        integer NOT NULL DEFAULT 0 CONSTRAINT products_stock_not_negative CHECK (stock >= 0),
    category_id  uuid CONSTRAINT products_category_id_fkey REFERENCES categories (id) ON DELETE RESTRICT,
    featured     boolean NOT NULL DEFAULT false,
    weight_grams integer NOT NULL CONSTRAINT products_weight_positive CHECK (weight_grams > 0),
    height_cm    integer NOT NULL CONSTRAINT products_height_positive CHECK (height_cm > 0),
    width_cm     integer NOT NULL CONSTRAINT products_width_positive CHECK (width_cm > 0),
    length_cm    integer NOT NULL CONSTRAINT products_length_positive CHECK (length_cm > 0),
    -- Mercosur nomenclature code, required on the NF-e: 8 digits.
    ncm          text NOT NULL CONSTRAINT products_ncm_format CHECK (ncm ~ '^[0-9]{8}$'),
    images       text[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Soft delete: gone from every public read and from carts, still referenced by old orders.
    deleted_at   timestamptz,
    -- Kept current by the database. Accents are stripped before Portuguese stemming, on both
    -- sides (the query goes through the same functions), so "cafe" finds "Café".
    search       tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('portuguese', immutable_unaccent(name)), 'A')
        || setweight(to_tsvector('simple', immutable_unaccent(sku)), 'A')
        || setweight(to_tsvector('portuguese', immutable_unaccent(description)), 'B')
    ) STORED
);

-- SKUs and slugs are unique among live products: a deleted product's SKU can be reused.
CREATE UNIQUE INDEX products_sku_key ON products (lower(sku)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX products_slug_key ON products (slug) WHERE deleted_at IS NULL;

CREATE INDEX products_search_idx ON products USING gin (search);
-- Typo tolerance ("caffe" finds "Café"): trigram similarity on the unaccented name.
CREATE INDEX products_name_trgm_idx ON products USING gin (immutable_unaccent(name) gin_trgm_ops);

-- The list orders the API offers.
CREATE INDEX products_newest_idx ON products (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX products_price_idx ON products (price_cents, id) WHERE deleted_at IS NULL;
CREATE INDEX products_category_idx ON products (category_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX products_featured_idx ON products (created_at DESC, id DESC) WHERE deleted_at IS NULL AND featured;

-- Cache invalidation: every change to a product or category is announced on channel
-- `catalog_changes`, from the writing transaction itself, so it is delivered only on commit
-- and reaches every API instance's listener (api/src/cache.rs). Statement-level with a
-- transition table: one notification per changed row, or one "flush" for bulk changes.
CREATE FUNCTION notify_catalog_changes() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    kind    text := TG_ARGV[0];
    changed bigint;
    row_id  uuid;
BEGIN
    SELECT count(*) INTO changed FROM changed_rows;
    IF changed = 0 THEN
        RETURN NULL;
    ELSIF changed > 100 THEN
        PERFORM pg_notify('catalog_changes', kind || 's');
    ELSE
        FOR row_id IN SELECT id FROM changed_rows LOOP
            PERFORM pg_notify('catalog_changes', kind || ':' || row_id);
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER products_notify_insert AFTER INSERT ON products
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalog_changes('product');
CREATE TRIGGER products_notify_update AFTER UPDATE ON products
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalog_changes('product');
CREATE TRIGGER products_notify_delete AFTER DELETE ON products
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalog_changes('product');

CREATE TRIGGER categories_notify_insert AFTER INSERT ON categories
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalog_changes('category');
CREATE TRIGGER categories_notify_update AFTER UPDATE ON categories
    REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalog_changes('category');
CREATE TRIGGER categories_notify_delete AFTER DELETE ON categories
    REFERENCING OLD TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify_catalog_changes('category');
