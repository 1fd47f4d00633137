-- 0005_oauth: OAuth2 token pairs, one row per client id (keapsync auth writes the first;
-- every refresh rotates it under the row's lock). keapsync.tokens of 0001 was never used.
--   access_token, refresh_token  in clear, or "sb1:<base64>" sealed with the key of
--                                KEAPSYNC_TOKEN_KEY_FILE (encrypted = true)
--   generation                   bumped by every save: tells a process the pair was rotated
--                                by another
DROP TABLE IF EXISTS keapsync.tokens;

CREATE TABLE keapsync.oauth_tokens (
    client_id     text PRIMARY KEY,
    access_token  text NOT NULL,
    refresh_token text NOT NULL,
    encrypted     boolean NOT NULL DEFAULT false,
    scope         text,
    obtained_at   timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    generation    bigint NOT NULL DEFAULT 1,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Only the owner (and superusers) may read tokens; grant nothing on this table.
REVOKE ALL ON keapsync.oauth_tokens FROM PUBLIC;
