-- Rate-limit budgets that every API instance shares: logins, registrations and reset requests
-- per client address, and failed logins per account.
--
-- One row per (budget, key) holds the budget's theoretical arrival time (GCRA, the algorithm
-- the in-process limiter uses): a request is allowed while `tat` minus the whole window lies
-- in the past, and each allowed request moves `tat` on by window / requests. A row whose `tat`
-- has passed is a full budget, the same as no row, so pruning it changes nothing.
--
-- UNLOGGED: these rows are written on every login and are worth nothing after a crash (the
-- worst a lost row does is give one client a fresh budget), so they skip the WAL.
CREATE UNLOGGED TABLE rate_limit_budgets (
    budget text NOT NULL,
    -- A client's address block, or a hash of an account's e-mail (never the address itself).
    key text NOT NULL,
    tat timestamptz NOT NULL,
    -- Whether the last request was allowed: the statement that decides also answers.
    allowed boolean NOT NULL,
    PRIMARY KEY (budget, key)
);

-- The pruning sweep deletes budgets that are full again.
CREATE INDEX rate_limit_budgets_tat_idx ON rate_limit_budgets (tat);
