-- A customer's address book. Whenever a customer has addresses, exactly one is the default:
-- the partial unique index allows at most one, the application keeps at least one.
CREATE TABLE addresses (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label       text,
    recipient   text NOT NULL,
    cep         text NOT NULL,
    street      text NOT NULL,
    number      text NOT NULL,
    complement  text,
    district    text NOT NULL,
    city        text NOT NULL,
    state       text NOT NULL,
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT addresses_cep_digits CHECK (cep ~ '^[0-9]{8}$'),
    CONSTRAINT addresses_state_uf CHECK (state IN (
        'AC', 'AL', 'AM', 'AP', 'BA', 'CE', 'DF', 'ES', 'GO', 'MA', 'MG', 'MS', 'MT', 'PA',
        'PB', 'PE', 'PI', 'PR', 'RJ', 'RN', 'RO', 'RR', 'RS', 'SC', 'SE', 'SP', 'TO'))
);

CREATE UNIQUE INDEX addresses_one_default_per_user ON addresses (user_id) WHERE is_default;
CREATE INDEX addresses_user_id_created_at ON addresses (user_id, created_at);
