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

-- A job's state as operators see it: apalis' statuses, plus `cancelled` for a job that ended
-- because an operator cancelled it (`cancelled` in its metadata, written when it ends that
-- way; `cancel_requested_by` is only the request, which a running job may not honour).
CREATE FUNCTION cart_queue.job_state(status text, attempts integer, max_attempts integer,
                                     metadata hstore) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE
            WHEN status = 'Killed' AND metadata ? 'cancelled' THEN 'cancelled'
            WHEN status IN ('Pending', 'Queued') THEN 'pending'
            WHEN status = 'Running' THEN 'running'
            WHEN status = 'Done' THEN 'done'
            WHEN status = 'Failed' AND attempts < max_attempts THEN 'retrying'
            ELSE 'failed'
        END
    $$;

-- Jobs enqueued before this migration name what they serve only in their payload (the
-- released envelope is `{request_id, payload}`): copy it into the metadata, by kind, before
-- the indexes exist (so the update does not maintain them). A payload PostgreSQL cannot
-- read as JSON is left as it is rather than failing the migration.
CREATE FUNCTION pg_temp.envelope(job bytea) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
        BEGIN
            RETURN convert_from(job, 'UTF8')::jsonb;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END
    $$;

WITH served AS (
    SELECT id,
           CASE
               WHEN job_type IN ('expire_order', 'emit_invoice', 'refund_payment')
                   THEN envelope -> 'payload' ->> 'order_id'
               WHEN job_type = 'send_email'
                   AND idempotency_key ~ '^(order_placed|order_shipped|payment_confirmed|invoice_issued):'
                   THEN split_part(idempotency_key, ':', 2)
           END AS order_id,
           CASE WHEN job_type = 'initiate_payment'
                THEN envelope -> 'payload' ->> 'payment_id' END AS payment_id
    FROM (
        SELECT id, job_type, idempotency_key,
               CASE WHEN job_type = 'send_email' THEN NULL ELSE pg_temp.envelope(job) END
                   AS envelope
        FROM apalis.jobs
        WHERE job_type IN ('expire_order', 'emit_invoice', 'refund_payment', 'send_email',
                           'initiate_payment')
          AND NOT (COALESCE(metadata, ''::hstore) ?| ARRAY['order_id', 'payment_id'])
    ) AS jobs
)
UPDATE apalis.jobs AS j
SET metadata = COALESCE(j.metadata, ''::hstore)
    || CASE WHEN s.order_id IS NULL THEN ''::hstore ELSE hstore('order_id', s.order_id) END
    || CASE WHEN s.payment_id IS NULL THEN ''::hstore ELSE hstore('payment_id', s.payment_id) END
FROM served AS s
WHERE j.id = s.id AND (s.order_id IS NOT NULL OR s.payment_id IS NOT NULL);

DROP FUNCTION pg_temp.envelope(bytea);

-- Jobs by the order and payment they serve (`Serves`, copied into the metadata on enqueue).
CREATE INDEX jobs_serving_order_idx ON apalis.jobs ((metadata -> 'order_id'))
    WHERE metadata ? 'order_id';
CREATE INDEX jobs_serving_payment_idx ON apalis.jobs ((metadata -> 'payment_id'))
    WHERE metadata ? 'payment_id';
