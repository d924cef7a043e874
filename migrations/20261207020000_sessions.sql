-- Sessions: every bearer token names one (`sid`), so that one session can end alone (logout)
-- and at once on every API instance. The whole-second `users.sessions_valid_after` cut-off
-- is no longer read; the column stays because released migrations are not edited.
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- The token's `exp`: past it the row only waits for the purge.
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

CREATE INDEX sessions_user_id ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Earlier e-mail addresses of an account: mail sent to them (queued jobs, outbox files) is
-- found and erased with the account. Deleted by the anonymisation itself.
CREATE TABLE email_changes (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    old_email   text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX email_changes_user_id ON email_changes (user_id, changed_at);
