# deploy/lib/pg.sh: a private, throwaway PostgreSQL cluster for the demo and the tests.
# Never touches the system cluster (port 5432). Works as root (the server runs as the
# "postgres" user, which Debian's postgresql package creates) and as an ordinary user.
#
#   . deploy/lib/pg.sh
#   pg_throwaway_start DIR    # initdb + start on a free 127.0.0.1 port; exports DATABASE_URL
#                             # (the least-privilege role) and KEAPSYNC_ADMIN_URL (superuser)
#   pg_throwaway_stop DIR     # stops the server (the caller removes DIR)
#   pg_make_db NAME           # (re)creates database NAME as the admin, grants the role on it
#                             # (pg_role.sql); prints the role's URL of it
#
# The cluster has two roles (docs/POSTGRES_ROLE.md): keapsync_admin, the superuser that owns it
# (for the test harness only: creating databases, stopping backends, ALTER DATABASE), and
# keapsync, a plain login with only the grants of deploy/lib/pg_role.sql, which keapsync and
# the tests' queries run as.
PG_ROLE=keapsync
PG_ADMIN_ROLE=keapsync_admin
PG_ROLE_SQL="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pg_role.sql"

pg_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    return 1
}

# Runs a command as the cluster's owner.
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_free_port() {
    local p i
    for i in $(seq 1 50); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 30000 ))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"; return 0
        fi
    done
    return 1
}

pg_throwaway_start() {
    local dir=$1 bin port try n0
    bin=$(pg_bindir) || { echo "error: PostgreSQL server binaries not found; run deploy/install-deps.sh" >&2; return 1; }
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || { echo "error: user postgres is missing; run deploy/install-deps.sh" >&2; return 1; }
        chown postgres "$dir"
        chmod 700 "$dir"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        pg_as_owner "$bin/initdb" -D "$dir/data" -U "$PG_ADMIN_ROLE" --auth=trust -E UTF8 --no-locale \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    fi
    # A port found free may be taken before the server binds it (other clusters start on
    # this machine too): then another one, up to 5 times.
    for try in 1 2 3 4 5; do
        port=$(pg_free_port) || { echo "error: no free port for PostgreSQL" >&2; return 1; }
        n0=0
        if [ -f "$dir/server.log" ]; then n0=$(wc -l <"$dir/server.log"); fi
        pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50" \
            start >/dev/null 2>"$dir/pg_ctl.err" && break
        if [ "$try" -eq 5 ] || ! tail -n +$((n0 + 1)) "$dir/server.log" | grep -q 'Address already in use'; then
            cat "$dir/pg_ctl.err" >&2
            tail -n +$((n0 + 1)) "$dir/server.log" >&2
            return 1
        fi
    done
    echo "$port" > "$dir/port"
    export KEAPSYNC_ADMIN_URL="postgresql://$PG_ADMIN_ROLE@127.0.0.1:$port/keapsync"
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$PG_ADMIN_ROLE" keapsync 2>/dev/null || true
    pg_grant_db keapsync || return 1
    export DATABASE_URL="postgresql://$PG_ROLE@127.0.0.1:$port/keapsync"
    export PG_THROWAWAY_DIR="$dir"
}

# pg_grant_db DB: creates the role if missing and grants it what it needs on DB (pg_role.sql),
# over KEAPSYNC_ADMIN_URL.
pg_grant_db() {
    PGOPTIONS="-c client_min_messages=warning" psql "$KEAPSYNC_ADMIN_URL" -qAtX \
        -v role="$PG_ROLE" -v db="$1" -f "$PG_ROLE_SQL" >/dev/null ||
        { echo "error: could not grant role $PG_ROLE on database $1 ($PG_ROLE_SQL)" >&2; return 1; }
}

# pg_make_db NAME: drops and creates database NAME (owned by the admin), grants the role on it,
# and prints the role's URL of it.
pg_make_db() {
    local base=${KEAPSYNC_ADMIN_URL%/*}
    PGOPTIONS="-c client_min_messages=warning" psql "$KEAPSYNC_ADMIN_URL" -qAtX -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null ||
        { echo "error: could not create database $1 as $PG_ADMIN_ROLE" >&2; return 1; }
    pg_grant_db "$1" || return 1
    echo "postgresql://$PG_ROLE@${base#*@}/$1"
}

pg_throwaway_stop() {
    local dir=$1 bin
    bin=$(pg_bindir) || return 0
    [ -f "$dir/data/postmaster.pid" ] || return 0
    pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}
