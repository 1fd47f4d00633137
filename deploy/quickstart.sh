#!/usr/bin/env bash
# Command 1 of the README: builds keapsync, starts a private PostgreSQL and keapsim (a
# simulated Keap account of a few thousand contacts), and syncs the account into Postgres.
# Run it again and the second sync is incremental. `deploy/quickstart.sh --stop` stops the
# private PostgreSQL and deletes its data.
set -euo pipefail
cd "$(dirname "$0")/.."

state=/tmp/keapsync-quickstart-$(id -u)
. deploy/lib/pg.sh

if [ "${1:-}" = "--stop" ]; then
    pg_throwaway_stop "$state/pg"
    rm -rf "$state"
    echo "quickstart: stopped and removed $state"
    exit 0
fi

# Every shipped job runs, including each contact's tags (a request per contact): at Keap's
# 240 requests a minute, 600 contacts take about three minutes.
size=${QUICKSTART_CONTACTS:-600}
echo "== dependencies and build"
bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

mkdir -p "$state"
chmod 755 "$state"
echo "== private PostgreSQL"
# (Reused while it answers as both the least-privilege role and the admin, docs/POSTGRES_ROLE.md;
# a cluster from before the role was made fresh.)
if [ -f "$state/pg/port" ] && [ -f "$state/pg/data/postmaster.pid" ] &&
   [ "$(psql "postgresql://$PG_ROLE@127.0.0.1:$(cat "$state/pg/port")/keapsync" -qAtXc 'select rolsuper from pg_roles where rolname = current_user' 2>/dev/null)" = f ] &&
   psql "postgresql://$PG_ADMIN_ROLE@127.0.0.1:$(cat "$state/pg/port")/keapsync" -qAtXc 'select 1' >/dev/null 2>&1; then
    export DATABASE_URL="postgresql://$PG_ROLE@127.0.0.1:$(cat "$state/pg/port")/keapsync"
    echo "   reusing $DATABASE_URL"
else
    pg_throwaway_stop "$state/pg"
    rm -rf "$state/pg"
    pg_throwaway_start "$state/pg"
    echo "   started $DATABASE_URL (data in $state/pg)"
fi

echo "== keapsim with $size contacts"
# A made-up key for the simulator; a real one would come from Keap's developer settings.
export KEAP_API_KEY="quickstart-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
: >"$state/keapsim.out"
build/keapsim --port 0 --seed 2024 --size "$size" --api-key "$KEAP_API_KEY" >>"$state/keapsim.out" 2>"$state/keapsim.err" &
ksim=$!
trap 'kill $ksim 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^keapsim listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$state/keapsim.out" 2>/dev/null | head -1 || true)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { cat "$state/keapsim.err" >&2; echo "quickstart: keapsim did not start" >&2; exit 1; }
export KEAP_BASE_URL="http://127.0.0.1:$port/crm/rest"
export KEAPSYNC_JOBS=jobs

echo "== keapsync migrate"
build/keapsync migrate
echo "== keapsync run"
start=$(date +%s.%N)
rc=0
build/keapsync run || rc=$?
end=$(date +%s.%N)
[ "$rc" -eq 0 ] || { echo "quickstart: keapsync run exited $rc" >&2; exit "$rc"; }

rows=$(psql "$DATABASE_URL" -qAtc 'select count(*) from keap.contacts')
requests=$(curl -sf "http://127.0.0.1:$port/__admin/stats" | jq -r .requests)
rejected=$(curl -sf "http://127.0.0.1:$port/__admin/stats" | jq -r .rejected_429)
echo
echo "quickstart: $rows rows in keap.contacts"
echo "quickstart: this run spent $requests requests ($rejected refused with 429) in $(printf "%.2f" "$(echo "$end - $start" | bc -l)") s"
echo "quickstart: look at them with"
echo "    psql '$DATABASE_URL' -c 'select id, given_name, family_name, email, last_updated from keap.contacts order by id limit 10'"
echo "quickstart: run this script again for an incremental sync; stop the database with deploy/quickstart.sh --stop"
