-- Every action an operator takes on the system from a CLI (retrying or discarding jobs,
-- enqueueing one by hand): who, what, on which jobs, when.
CREATE TABLE operator_audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor      text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action     text NOT NULL CHECK (action <> ''),
    job_ids    text[] NOT NULL DEFAULT '{}',
    details    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX operator_audit_created_at_idx ON operator_audit (created_at);
