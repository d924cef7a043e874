-- Background jobs live in apalis.jobs, which keeps only the last error of a job. Every failed
-- attempt is recorded here by the worker, so an operator can see a job's whole history.
CREATE TABLE job_failures (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     text NOT NULL REFERENCES apalis.jobs (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind <> ''),
    attempt    integer NOT NULL CHECK (attempt >= 1),
    error      text NOT NULL,
    -- The error was marked permanent (invalid data, a provider's 4xx): no retry followed.
    permanent  boolean NOT NULL DEFAULT false,
    -- When the next attempt was scheduled; null when this failure ended the job.
    retry_at   timestamptz,
    failed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX job_failures_job_id_idx ON job_failures (job_id, id);
CREATE INDEX job_failures_failed_at_idx ON job_failures (failed_at);

-- One vocabulary for a job's state, shared by the operator CLI and the metrics:
--   pending  = waiting to start (Pending, or Queued: claimed by a worker but not started),
--   running  = Running,
--   done     = Done,
--   retrying = Failed with attempts left (it runs again at run_at),
--   failed   = Failed with its attempts exhausted, or Killed (a permanent error).
CREATE FUNCTION job_state(status text, attempts integer, max_attempts integer) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$
        SELECT CASE
            WHEN status IN ('Pending', 'Queued') THEN 'pending'
            WHEN status = 'Running' THEN 'running'
            WHEN status = 'Done' THEN 'done'
            WHEN status = 'Failed' AND attempts < max_attempts THEN 'retrying'
            ELSE 'failed'
        END
    $$;

-- The prune ticker deletes finished jobs by age; apalis has no index for that.
CREATE INDEX job_prune_idx ON apalis.jobs (done_at) WHERE status IN ('Done', 'Failed', 'Killed');
