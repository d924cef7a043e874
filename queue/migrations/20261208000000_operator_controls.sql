-- What operators control: pausing a kind, limiting its starts per minute, cancelling jobs,
-- and finding a job by the order or payment it serves. The queue's own tables live in the
-- `cart_queue` schema, beside apalis' `apalis` schema (whose tables we only index).

-- One row per kind an operator has touched. Every worker process reads this table about once
-- a second, so a pause or a limit reaches every process within a second or two.
CREATE TABLE cart_queue.kind_controls (
    kind text PRIMARY KEY,
    paused_at timestamptz,
    paused_by text,
    per_minute integer CONSTRAINT kind_controls_per_minute_positive CHECK (per_minute > 0),
    limited_by text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kind_controls_pause_has_actor CHECK ((paused_at IS NULL) = (paused_by IS NULL))
);

-- The claims of a limited kind in the last minute: a claim of a limited kind locks the kind's
-- control row, counts these, claims at most what is left and records what it took, so every
-- process together starts at most `per_minute` jobs of the kind in any sixty seconds.
CREATE TABLE cart_queue.kind_starts (
    kind text NOT NULL,
    started_at timestamptz NOT NULL
);
CREATE INDEX kind_starts_kind_idx ON cart_queue.kind_starts (kind, started_at);

-- A job's state as operators see it: apalis' statuses, plus `cancelled` for a job an operator
-- cancelled (the `cancelled_by` key of its metadata).
CREATE FUNCTION cart_queue.job_state(status text, attempts integer, max_attempts integer,
                                     metadata hstore) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE
            WHEN status = 'Killed' AND metadata ? 'cancelled_by' THEN 'cancelled'
            WHEN status IN ('Pending', 'Queued') THEN 'pending'
            WHEN status = 'Running' THEN 'running'
            WHEN status = 'Done' THEN 'done'
            WHEN status = 'Failed' AND attempts < max_attempts THEN 'retrying'
            ELSE 'failed'
        END
    $$;

-- Jobs by the order and payment they serve (`Serves`, copied into the metadata on enqueue).
CREATE INDEX jobs_serving_order_idx ON apalis.jobs ((metadata -> 'order_id'))
    WHERE metadata ? 'order_id';
CREATE INDEX jobs_serving_payment_idx ON apalis.jobs ((metadata -> 'payment_id'))
    WHERE metadata ? 'payment_id';

-- Jobs enqueued before this migration carry what they serve in their envelope only.
CREATE FUNCTION cart_queue.envelope_or_null(job bytea) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
        BEGIN
            RETURN convert_from(job, 'UTF8')::jsonb;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END
    $$;

UPDATE apalis.jobs AS j
SET metadata = COALESCE(j.metadata, ''::hstore)
    || CASE WHEN e.envelope ? 'order_id'
            THEN hstore('order_id', e.envelope ->> 'order_id') ELSE ''::hstore END
    || CASE WHEN e.envelope ? 'payment_id'
            THEN hstore('payment_id', e.envelope ->> 'payment_id') ELSE ''::hstore END
FROM (
    SELECT id, cart_queue.envelope_or_null(job) AS envelope
    FROM apalis.jobs
    WHERE position('_id"' IN encode(job, 'escape')) > 0
) AS e
WHERE j.id = e.id AND (e.envelope ? 'order_id' OR e.envelope ? 'payment_id');

DROP FUNCTION cart_queue.envelope_or_null(bytea);
