-- Every claim and every acknowledgement rewrites a row of apalis.jobs, and such an update adds
-- an entry to each index of the table and, when it sets lock_by, checks a foreign key. The
-- apalis-postgres 1.0 schema carries two exact duplicates left by its older migrations
-- (unique_job_id repeats jobs_pkey on id, lidx repeats idx_apalis_jobs_lock_by on lock_by)
-- and a foreign key from jobs.lock_by to apalis.workers checked on every claim. Without them
-- the worker drains about a tenth more jobs a second, and a further tenth without the key
-- (BENCHMARKS.md). Worker names are registered before a worker claims anything, and the
-- prune ticker deletes only worker rows that no job points to, so the key guarded nothing
-- that could happen.

-- job_failures references apalis.jobs(id) through unique_job_id: point it at the primary key.
ALTER TABLE job_failures DROP CONSTRAINT IF EXISTS job_failures_job_id_fkey;
DROP INDEX IF EXISTS apalis.unique_job_id;
ALTER TABLE job_failures
    ADD CONSTRAINT job_failures_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES apalis.jobs (id) ON DELETE CASCADE;

DROP INDEX IF EXISTS apalis.lidx;
ALTER TABLE apalis.jobs DROP CONSTRAINT IF EXISTS fk_worker_lock_by;
