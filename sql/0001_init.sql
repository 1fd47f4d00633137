-- 0001_init: keapsync's own state (schema keapsync) and the home of synced data (schema keap).
-- Applied by store_migrate inside a transaction that also records it in keapsync.migrations;
-- never edit a released migration, add the next NNNN_name.sql instead.

CREATE SCHEMA IF NOT EXISTS keapsync;
CREATE SCHEMA IF NOT EXISTS keap;

-- One row per applied migration file.
CREATE TABLE keapsync.migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- A job's resume point: opaque JSON owned by the scheduler, committed with each page.
CREATE TABLE keapsync.checkpoints (
    job        text PRIMARY KEY,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The daily quota ledger, per Keap tenant and UTC day.
--   reserved      requests that may be sent today (reserved before sending; never above the
--                 day's budget when reserved by keapsync, raised to what the server reports)
--   spent         requests sent and committed with their page
--   server_used   the highest "used today" the server has reported
--   last_granted  what the latest reservation granted (lets one upsert return it)
CREATE TABLE keapsync.quota_ledger (
    tenant       text NOT NULL,
    day          date NOT NULL,
    reserved     bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    spent        bigint NOT NULL DEFAULT 0 CHECK (spent >= 0),
    server_used  bigint NOT NULL DEFAULT 0 CHECK (server_used >= 0),
    last_granted bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, day)
);

-- Run history: one row per `keapsync run` (or daemon cycle).
CREATE TABLE keapsync.runs (
    id          bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    jobs        text NOT NULL DEFAULT '',
    exit_code   int,
    requests    bigint,
    rows        bigint,
    message     text
);
CREATE INDEX runs_started_at_idx ON keapsync.runs (started_at);

-- Small key/value settings.
CREATE TABLE keapsync.settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- Named leases (e.g. one job or one OAuth refresh at a time across processes).
CREATE TABLE keapsync.leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- OAuth2 tokens per client id (refresh tokens rotate: the newest pair is the only valid one).
CREATE TABLE keapsync.tokens (
    client_id     text PRIMARY KEY,
    access_token  text NOT NULL,
    refresh_token text,
    scope         text,
    expires_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
