-- 0006_daemon: what `keapsync daemon` knows of each job's schedule, one row per job it has
-- scheduled (written by the daemon only; `keapsync status` and others may read it).
--   schedule      the cron expression in force (the job's "schedule" or KEAPSYNC_SCHEDULE)
--   last_tick_at  the tick the job's last finished run served: the ticks missed before it
--                 (downtime) were coalesced into that one run. NULL: never run by the daemon
--   next_at       when the daemon will run the job next: its next tick, or 00:00 UTC plus
--                 the jitter when the day's quota stopped it
--   last_run_at, last_outcome, last_records, last_requests
--                 the job's last run under the daemon: its start, its state (done, failed,
--                 stopped) and counts
CREATE TABLE keapsync.daemon_jobs (
    job           text PRIMARY KEY,
    schedule      text NOT NULL,
    last_tick_at  timestamptz,
    next_at       timestamptz,
    last_run_at   timestamptz,
    last_outcome  text,
    last_records  bigint,
    last_requests bigint,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
