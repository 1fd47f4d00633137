#!/usr/bin/env bash
# Bad input: each mistake gives one line naming what is wrong and how to fix it, the
# documented exit code, and writes nothing.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM"
it_keapsim --seed 3 --size 50 --api-key "$KEAP_API_KEY"
"$KS" migrate >/dev/null

# expect_fail NAME CODE PATTERN COMMAND...: exit code, a single stderr line matching PATTERN.
expect_fail() {
    local name=$1 code=$2 pat=$3 rc=0 lines
    shift 3
    "$@" >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
    eq "$name: exit code" "$code" "$rc"
    lines=$(grep -c . "$IT_TMP/err" || true)
    eq "$name: one line on stderr" 1 "$lines"
    check "$name: message says what is wrong [$(head -c 300 "$IT_TMP/err")]" grep -qE "$pat" "$IT_TMP/err"
}

nothing_written() {
    eq "$1: nothing written" 0 "$(sql "SELECT (SELECT count(*) FROM keapsync.checkpoints) + (SELECT count(*) FROM keapsync.runs) + (SELECT count(*) FROM information_schema.tables WHERE table_schema = 'keap')")"
}

expect_fail "missing key" 2 'KEAP_API_KEY.*hint' env -u KEAP_API_KEY -u KEAP_API_KEY_FILE "$KS" run
nothing_written "missing key"

printf '%s\n' "$KEAP_API_KEY" >"$IT_TMP/key"
chmod 644 "$IT_TMP/key"
expect_fail "world-readable key file" 2 'readable.*chmod' env -u KEAP_API_KEY KEAP_API_KEY_FILE="$IT_TMP/key" "$KS" run
expect_fail "unreadable key file" 2 'could not read key file' env -u KEAP_API_KEY KEAP_API_KEY_FILE="$IT_TMP/nope" "$KS" run
check "the key never appears in any message" bash -c "! grep -rq -- '$KEAP_API_KEY' '$IT_TMP'/err '$IT_TMP'/out"
nothing_written "key files"

expect_fail "unreachable database" 2 'could not connect.*hint' env DATABASE_URL="postgresql://keapsync:s3cretpw@127.0.0.1:1/none" "$KS" run
check "the database password never appears" bash -c "! grep -q s3cretpw '$IT_TMP/err'"

mkdir -p "$IT_TMP/jobs"
jq '.columns[1].type = "strng"' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
expect_fail "bad column type" 2 'contacts.json.*columns\[1\]\.type' env KEAPSYNC_JOBS="$IT_TMP/jobs" "$KS" run
expect_fail "check finds it too" 2 'contacts.json.*columns\[1\]\.type' env KEAPSYNC_JOBS="$IT_TMP/jobs" "$KS" check
jq '. + {pagesize: 5}' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
expect_fail "unknown key" 2 'contacts.json.*pagesize' env KEAPSYNC_JOBS="$IT_TMP/jobs" "$KS" run
jq 'del(.endpoint)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
expect_fail "missing field" 2 'contacts.json.*endpoint' env KEAPSYNC_JOBS="$IT_TMP/jobs" "$KS" run
jq '.table = "Bad-Name"' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
expect_fail "bad identifier" 2 'contacts.json.*table' env KEAPSYNC_JOBS="$IT_TMP/jobs" "$KS" run
expect_fail "bad limits" 2 'KEAPSYNC_LIMITS' env KEAPSYNC_LIMITS="ten/s" "$KS" run
expect_fail "unknown job in --only" 2 'nosuch' "$KS" run --only nosuch
expect_fail "unknown command" 2 'frobnicate' "$KS" frobnicate
nothing_written "bad configuration"

# A key Keap refuses: exit 77, and the rows already committed (none here) stay.
expect_fail "refused key" 77 'refused' env KEAP_API_KEY=wrong-key "$KS" run
eq "refused key: no rows" 0 "$(sql "SELECT count(*) FROM keap.contacts")"

check "check passes on the shipped jobs" "$KS" check
it_done
