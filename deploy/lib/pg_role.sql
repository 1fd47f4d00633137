-- deploy/lib/pg_role.sql: the least-privilege PostgreSQL role keapsync runs as, and its grants
-- on one database (docs/POSTGRES_ROLE.md explains each). Run it as a superuser, or as a role
-- with CREATEROLE that owns the database, once per database keapsync syncs into:
--
--   psql -v role=keapsync -v db=crm -f deploy/lib/pg_role.sql
--
-- Then give the role a password (\password keapsync) unless it logs in another way.
-- deploy/lib/pg.sh runs this very file for the throwaway clusters the tests use.
\set ON_ERROR_STOP on

-- A plain login: no superuser, no CREATEDB, no CREATEROLE, no replication, no RLS bypass.
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
              :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec

-- CONNECT: to log in to the database.
-- TEMPORARY: each page is COPYed into a temporary staging table (emptied at commit).
-- CREATE: `keapsync migrate` creates the schemas keapsync (its own state) and keap (the jobs'
--         tables), and a run with KEAPSYNC_SCHEMA=name creates that schema; the role owns
--         them and everything in them, so it needs no other grant.
GRANT CONNECT, TEMPORARY, CREATE ON DATABASE :"db" TO :"role";
