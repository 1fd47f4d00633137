-- 0004_job_stats: what each job's passes cost, for the quota planner (engine/sched/plan.c).
-- (0004, not 0003: the deletes branch may take 0003; versions need only increase.)

-- One row per job per run: what the run spent on the job and whether it completed the job's
-- pass. A pass may span runs (stopped at the quota): it is the rows after the job's previous
-- pass_done row up to and including the next one.
--   full_pass  the pass reads everything (a first incremental window, or a job without
--              "incremental"); false for an incremental window after a watermark
--   records    records read (rows written + rows left alone as older)
--   units      child streams, on the row that completes a full pass: the parents it read
CREATE TABLE keapsync.job_stats (
    id         bigserial PRIMARY KEY,
    run_id     bigint,
    job        text NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    full_pass  boolean NOT NULL,
    requests   bigint NOT NULL CHECK (requests >= 0),
    pages      bigint NOT NULL CHECK (pages >= 0),
    records    bigint NOT NULL CHECK (records >= 0),
    units      bigint,
    pass_done  boolean NOT NULL
);
CREATE INDEX job_stats_job_idx ON keapsync.job_stats (job, id);

-- The planner's latest estimate of a job's current pass (`keapsync plan`), so that a run
-- stopped at the quota can say what is left without spending a request.
CREATE TABLE keapsync.job_estimates (
    job        text PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    source     text NOT NULL,
    records    bigint NOT NULL,
    requests   bigint NOT NULL
);
