-- Payments, the webhook events that report on them, and the NF-e of paid orders.

CREATE TABLE payments (
    id uuid PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id),
    method text NOT NULL CONSTRAINT payments_method_check CHECK (method IN ('pix', 'credit_card')),
    -- The provider's stable name (`PixProvider::name`/`CardProvider::name`): the circuit
    -- breaker's key and where refunds go.
    provider text NOT NULL CONSTRAINT payments_provider_nonempty CHECK (provider <> ''),
    amount_cents bigint NOT NULL CONSTRAINT payments_amount_positive CHECK (amount_cents > 0),
    status text NOT NULL DEFAULT 'initiating'
        CONSTRAINT payments_status_check CHECK (status IN
            ('initiating', 'pending', 'paid', 'failed', 'expired', 'refunded', 'refund_pending',
             'amount_mismatch', 'paid_after_cancel')),
    txid text CONSTRAINT payments_txid_key UNIQUE,
    provider_reference text CONSTRAINT payments_provider_reference_key UNIQUE,
    copy_paste text,
    qr_code text,
    qr_code_url text,
    -- Handed to the browser to confirm a card payment; never logged.
    client_secret text,
    expires_at timestamptz,
    -- Why the payment failed or needs an operator (provider message, amount received).
    error text,
    -- What the confirming webhook said was paid, and when.
    paid_amount_cents bigint,
    paid_at timestamptz,
    refund_reference text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payments_order_idx ON payments (order_id, created_at DESC, id DESC);
-- At most one charge in flight per order: a second `pay` returns this one instead.
CREATE UNIQUE INDEX payments_one_active_per_order
    ON payments (order_id) WHERE status IN ('initiating', 'pending');

-- Every webhook we accepted (signature verified), once per provider event.
CREATE TABLE webhook_events (
    id uuid PRIMARY KEY,
    provider text NOT NULL,
    -- The provider's event id (ProPay event_id, Stripe evt_…, OpenPix event + correlationID).
    event_id text NOT NULL,
    event_type text NOT NULL,
    -- The raw request body exactly as signed.
    body bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz,
    -- What reconciliation made of it (e.g. `paid`, `duplicate`, `amount_mismatch`).
    outcome text,
    CONSTRAINT webhook_events_provider_event_key UNIQUE (provider, event_id)
);

CREATE INDEX webhook_events_unprocessed_idx ON webhook_events (received_at)
    WHERE processed_at IS NULL;

-- The NF-e of an order: one per order, so a retried emission never issues a second one.
CREATE TABLE invoices (
    id uuid PRIMARY KEY,
    order_id uuid NOT NULL REFERENCES orders (id) CONSTRAINT invoices_order_id_key UNIQUE,
    status text NOT NULL DEFAULT 'pending'
        CONSTRAINT invoices_status_check CHECK (status IN ('pending', 'authorized', 'rejected', 'cancelled')),
    number bigint,
    series integer,
    access_key text CONSTRAINT invoices_access_key_format CHECK (access_key ~ '^[0-9]{44}$'),
    pdf_url text,
    xml_url text,
    -- The provider's reason for a rejection.
    message text,
    CONSTRAINT invoices_authorized_complete CHECK (
        status <> 'authorized'
        OR (number IS NOT NULL AND series IS NOT NULL AND access_key IS NOT NULL
            AND pdf_url IS NOT NULL AND xml_url IS NOT NULL)
    ),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
