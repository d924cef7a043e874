-- The session cut-off is compared with the `iat` of tokens, which the API's clock writes, so
-- the API writes the cut-off too (on a password reset) instead of the database's `now()`:
-- a database clock ahead of the API's would otherwise refuse brand-new tokens.
-- NULL means no cut-off.
ALTER TABLE users
    ALTER COLUMN sessions_valid_after DROP DEFAULT,
    ALTER COLUMN sessions_valid_after DROP NOT NULL;

-- Accounts that never reset their password got the default at creation.
UPDATE users SET sessions_valid_after = NULL WHERE sessions_valid_after = created_at;
