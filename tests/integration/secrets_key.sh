#!/usr/bin/env bash
# Secrets, the API key path (issue 13): a sync with a distinctive test key, once from
# KEAP_API_KEY and once from KEAP_API_KEY_FILE, at debug log level, then a run with a refused
# key. Every byte of stdout and stderr, every process's argv sampled while the runs go (ps),
# the environment of the key-file run (/proc/PID/environ), and a pg_dump of the whole
# database (rows, run history, ledger, settings) are searched for each secret and for any 12
# characters of its random part: 0 hits. The syncs must have done real work (rows written,
# requests counted), so a run that never used the key cannot pass.
. "$(dirname "$0")/lib.sh"

it_make_db
rand=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
secret="ksTESTkey-$rand"
refused="ksREFUSEDkey-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
# keapsim reads the key from a file: its own argv must not hold it either (ps sees everything).
printf '%s\n' "$secret" >"$IT_TMP/simkey"
it_keapsim --seed 7 --size 300 --api-key-file "$IT_TMP/simkey"
rm -f "$IT_TMP/simkey"
export KEAPSYNC_LOG_LEVEL=debug
unset KEAP_API_KEY KEAP_API_KEY_FILE
"$KS" migrate >"$IT_TMP/migrate.out" 2>&1

# sample PID: every process's argv, every 50 ms while PID lives.
sample() {
    while kill -0 "$1" 2>/dev/null; do
        ps -eo args >>"$IT_TMP/ps.txt" 2>/dev/null || true
        sleep 0.05
    done
}

: >"$IT_TMP/ps.txt"
KEAP_API_KEY="$secret" "$KS" run --only contacts,tags >"$IT_TMP/run1.out" 2>"$IT_TMP/run1.err" &
pid=$!
IT_PIDS+=("$pid")
sample "$pid"
rc=0
wait "$pid" || rc=$?
eq "key in KEAP_API_KEY: the sync succeeds" 0 "$rc"

printf '%s\n' "$secret" >"$IT_TMP/key"
chmod 600 "$IT_TMP/key"
sql "UPDATE keapsync.checkpoints SET state = '{}'::jsonb" >/dev/null 2>&1 || true
KEAP_API_KEY_FILE="$IT_TMP/key" "$KS" run --only contacts >"$IT_TMP/run2.out" 2>"$IT_TMP/run2.err" &
pid=$!
IT_PIDS+=("$pid")
: >"$IT_TMP/environ"
environ_refused=0
for _ in $(seq 1 500); do # once the background shell has exec'd keapsync
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^$KS run"; then
        # keapsync is not dumpable (main.c): only root may read its environment
        cp "/proc/$pid/environ" "$IT_TMP/environ" 2>/dev/null || environ_refused=1
        break
    fi
    sleep 0.01
done
sample "$pid"
rc=0
wait "$pid" || rc=$?
eq "key in KEAP_API_KEY_FILE: the sync succeeds" 0 "$rc"
if [ "$(id -u)" -eq 0 ]; then
    check "the key file run's environment was read (as root)" test -s "$IT_TMP/environ"
else
    eq "the key file run's environment cannot be read by its own user (not dumpable)" 1 "${environ_refused:-0}"
fi

rc=0
KEAP_API_KEY="$refused" "$KS" run --only contacts >"$IT_TMP/run3.out" 2>"$IT_TMP/run3.err" || rc=$?
eq "a refused key: exit 77" 77 "$rc"

rows=$(sql "SELECT count(*) FROM keap.contacts")
check "the syncs wrote rows ($rows)" test "$rows" -gt 0
reqs=$(sql "SELECT COALESCE(sum(reserved), 0) FROM keapsync.quota_ledger")
check "the syncs sent requests with the key ($reqs)" test "$reqs" -gt 0
debug=$(cat "$IT_TMP"/run*.err | grep -c ' DEBUG: ' || true)
check "debug logging was on ($debug lines)" test "$debug" -gt 0
check "ps was sampled ($(wc -l <"$IT_TMP/ps.txt") lines)" grep -q keapsync "$IT_TMP/ps.txt"

pg_dump --no-owner "$DATABASE_URL" >"$IT_TMP/dump.sql"
check "the dump holds the synced rows" test "$(wc -c <"$IT_TMP/dump.sql")" -gt 10000

# Every secret, whole, and every 12-character window of its random part.
needles=("$secret" "$refused")
for s in "$rand" "${refused#ksREFUSEDkey-}"; do
    for ((i = 0; i + 12 <= ${#s}; i++)); do needles+=("${s:i:12}"); done
done
printf '%s\n' "${needles[@]}" >"$IT_TMP/needles"
printf 'x%sy\n' "${rand:3:12}" >"$IT_TMP/planted"
eq "the search finds a planted fragment of the key" 1 "$(grep -aoFf "$IT_TMP/needles" "$IT_TMP/planted" | wc -l)"
files=("$IT_TMP"/run*.out "$IT_TMP"/run*.err "$IT_TMP/migrate.out" "$IT_TMP/ps.txt" "$IT_TMP/dump.sql")
hits=$(cat "${files[@]}" | grep -aoFf "$IT_TMP/needles" | wc -l || true)
for f in "${files[@]}"; do
    n=$(grep -aoFf "$IT_TMP/needles" "$f" | wc -l || true)
    [ "$n" -eq 0 ] || it_log "$n hits in $f: $(grep -aFf "$IT_TMP/needles" "$f" | head -c 300)"
done
eq "no secret in output, argv or the database (${#needles[@]} needles, $(cat "${files[@]}" | wc -c) bytes)" 0 "$hits"
hits=$(tr '\0' '\n' <"$IT_TMP/environ" | grep -aoFf "$IT_TMP/needles" | wc -l || true)
eq "no secret in the key file run's environment" 0 "$hits"
it_case_end "the API key searched for (whole and any 12 characters) in output, argv, environ and a dump" "${#needles[@]}"
it_done
