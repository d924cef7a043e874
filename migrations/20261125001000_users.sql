-- Accounts. Rows are never deleted: an LGPD erasure anonymises the row (deleted_at set,
-- personal data scrubbed) so that orders and invoices keep their foreign key.
CREATE TABLE users (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL,
    -- Stored normalised (trimmed, lower-cased); the application does that before writing.
    email                text NOT NULL,
    -- 11 digits, check digits validated by the application; NULL until the customer gives it.
    cpf                  text,
    -- A PHC string (Argon2id). An anonymised account holds a value no verifier accepts.
    password_hash        text NOT NULL,
    role                 text NOT NULL DEFAULT 'user',
    -- Tokens issued (iat) before this instant are refused: a password reset ends old sessions.
    sessions_valid_after timestamptz NOT NULL DEFAULT now(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email)) AND email LIKE '%_@_%'),
    CONSTRAINT users_cpf_digits CHECK (cpf ~ '^[0-9]{11}$'),
    CONSTRAINT users_role_check CHECK (role IN ('user', 'admin')),
    CONSTRAINT users_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 200)
);
