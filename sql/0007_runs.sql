-- 0007_runs: run history an operator reads (keapsync status, keapsync report, the metrics
-- textfile): how each run ended, in words, and what it and each of its jobs cost.
-- (0007, not 0006: the daemon branch takes 0006; versions need only increase.)

-- keapsync.runs gains:
--   outcome        complete, quota, auth, failed, interrupted, nomem, config, or crashed (a
--                  process that never finished its row: the next run's start closes it);
--                  NULL while the run is going
--   rejected_429*  requests refused with 429, in all and by the window the 429 named
--                  (second: spike arrest, minute: throttle, day: quota, other: unnamed)
--   bytes          response bodies received
--   pid            the process, for whoever reads a row of a run still going
--   commit_buckets how long its pages' commits took: counts per bucket of upper bounds
--                  0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 s, then those above 10 s
--   commit_seconds their sum
ALTER TABLE keapsync.runs
    ADD COLUMN outcome text,
    ADD COLUMN rejected_429 bigint,
    ADD COLUMN rejected_429_second bigint,
    ADD COLUMN rejected_429_minute bigint,
    ADD COLUMN rejected_429_day bigint,
    ADD COLUMN rejected_429_other bigint,
    ADD COLUMN bytes bigint,
    ADD COLUMN pid int,
    ADD COLUMN commit_buckets bigint[],
    ADD COLUMN commit_seconds double precision;

-- Rows of runs that ended before this migration: their outcome from their exit code.
UPDATE keapsync.runs SET outcome = CASE exit_code
        WHEN 0 THEN 'complete' WHEN 75 THEN 'quota' WHEN 77 THEN 'auth' WHEN 2 THEN 'config'
        ELSE 'failed' END
    WHERE exit_code IS NOT NULL;

-- One row per run and job (sweeps "<job>#sweep" and backfills "<job>#backfill<id>" too):
--   state     done, stopped (at the quota or a signal: resumes next run), failed, paging
--   records   rows written (inserted or updated)
--   error     why the job failed, or NULL
CREATE TABLE keapsync.run_jobs (
    run_id       bigint NOT NULL REFERENCES keapsync.runs (id) ON DELETE CASCADE,
    job          text NOT NULL,
    state        text NOT NULL,
    requests     bigint NOT NULL DEFAULT 0,
    rejected_429 bigint NOT NULL DEFAULT 0,
    pages        bigint NOT NULL DEFAULT 0,
    records      bigint NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    error        text,
    PRIMARY KEY (run_id, job)
);
CREATE INDEX run_jobs_job_idx ON keapsync.run_jobs (job, run_id);
