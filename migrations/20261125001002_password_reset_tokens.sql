-- Single-use password reset tokens. Only the SHA-256 of the token is stored, so a copy of
-- the database does not let anyone reset a password.
CREATE TABLE password_reset_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT password_reset_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT password_reset_tokens_sha256 CHECK (octet_length(token_hash) = 32)
);

CREATE INDEX password_reset_tokens_user_id ON password_reset_tokens (user_id);
