-- 0003_deletes_backfills: delete sweeps and backfills.
--
-- keapsync.sweep_seen holds the ids a sweep has read so far (a delete sweep of an incremental
-- job, or a full pass of a job that reads everything). "key" is the sweep's checkpoint name.
-- The rows are written with each page, in the page's transaction; the page that completes the
-- sweep marks, in the same transaction, every row of the job's table it did not see (and that
-- was not written since the sweep began) with deleted_at, and clears the key's rows. A sweep
-- that is interrupted marks nothing; the next run carries on with what it saw.
CREATE TABLE keapsync.sweep_seen (
    key text NOT NULL,
    id  text NOT NULL,
    PRIMARY KEY (key, id)
);

-- Backfills recorded by `keapsync backfill NAME --from DATE [--to DATE]`: the history of an
-- incremental job read again over [from_at, to_at). Its progress is the checkpoint named
-- "<job>#backfill<id>" (the scheduler's); every run continues it until it is done.
CREATE TABLE keapsync.backfills (
    id         bigserial PRIMARY KEY,
    job        text NOT NULL,
    from_at    timestamptz NOT NULL,
    to_at      timestamptz NOT NULL CHECK (to_at > from_at),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backfills_job_idx ON keapsync.backfills (job);
