-- The payment a webhook event names: an order's timeline, and the operator's search for the
-- reconciliation jobs of an order (which name only their event), find its events by key
-- instead of searching every stored body. A body names the payment by our id, its txid or
-- the provider's reference, differently for each provider (`payments::webhooks::parse`).
--
-- Set when the event is stored, if the payment is found then, and by reconciliation once a
-- payment matched, whatever the outcome, so an amount mismatch or an event naming a payment
-- of another provider shows on that payment. NULL for events that name no payment of ours
-- (ignored kinds, unknown payments).
ALTER TABLE webhook_events
    ADD COLUMN payment_id uuid CONSTRAINT webhook_events_payment_id_fkey REFERENCES payments (id);

CREATE INDEX webhook_events_payment_idx ON webhook_events (payment_id, received_at)
    WHERE payment_id IS NOT NULL;

-- Backfill the events reconciled before this column existed, with the rules reconciliation
-- applies (the event kinds it acts on, and how each provider names the payment). A body that
-- is not JSON PostgreSQL can read (a NUL escaped in a string, say) is left unmatched rather
-- than failing the migration.
CREATE FUNCTION pg_temp.webhook_body(body bytea) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN convert_from(body, 'UTF8')::jsonb;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;

CREATE FUNCTION pg_temp.payment_uuid(raw text) RETURNS uuid
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN raw ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$'
                THEN raw::uuid END
$$;

WITH reconciled AS (
    SELECT id, provider, pg_temp.webhook_body(body) AS doc
    FROM webhook_events
    WHERE processed_at IS NOT NULL
      AND outcome IS DISTINCT FROM 'unknown_payment'
      AND outcome IS DISTINCT FROM 'ignored'
),
stripe_intents AS (
    SELECT id,
           pg_temp.payment_uuid(doc -> 'data' -> 'object' -> 'metadata' ->> 'payment_id') AS by_id,
           doc -> 'data' -> 'object' ->> 'id' AS intent
    FROM reconciled
    WHERE provider = 'stripe'
      AND doc ->> 'type' IN ('payment_intent.succeeded', 'payment_intent.payment_failed')
),
named AS (
    -- ProPay and the sandbox: `pix.paid` names the txid.
    SELECT r.id, p.id AS payment_id
    FROM reconciled r JOIN payments p ON p.txid = r.doc ->> 'txid'
    WHERE r.provider = 'propay' AND r.doc ->> 'event' = 'pix.paid'
    UNION ALL
    -- OpenPix: the charge's correlationID is our payment id.
    SELECT r.id, p.id
    FROM reconciled r
    JOIN payments p ON p.id = pg_temp.payment_uuid(
        COALESCE(r.doc -> 'charge' ->> 'correlationID',
                 r.doc -> 'pix' -> 'charge' ->> 'correlationID'))
    WHERE r.provider = 'openpix'
      AND r.doc ->> 'event' IN ('OPENPIX:CHARGE_COMPLETED', 'OPENPIX:TRANSACTION_RECEIVED')
    UNION ALL
    -- Stripe: the intent's metadata.payment_id when it is a uuid, else the intent's id as
    -- the provider's reference.
    SELECT r.id, p.id
    FROM stripe_intents r JOIN payments p ON p.id = r.by_id
    UNION ALL
    SELECT r.id, p.id
    FROM stripe_intents r JOIN payments p ON p.provider_reference = r.intent
    WHERE r.by_id IS NULL
)
UPDATE webhook_events w SET payment_id = named.payment_id
FROM named
WHERE w.id = named.id;

DROP FUNCTION pg_temp.webhook_body(bytea);
DROP FUNCTION pg_temp.payment_uuid(text);
