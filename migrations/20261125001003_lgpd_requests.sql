-- The record of data-subject requests (LGPD art. 18): who asked for what, when it was
-- answered, and for an erasure what was kept and on which legal basis.
CREATE TABLE lgpd_requests (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    kind          text NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT lgpd_requests_kind_check CHECK (kind IN ('access', 'anonymisation'))
);

CREATE INDEX lgpd_requests_user_id ON lgpd_requests (user_id, requested_at);
