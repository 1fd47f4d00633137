#!/usr/bin/env bash
# The corpus of broken job files for the new keys (tests/unit/jobs/bad/*.expect beside each
# case): `keapsync check` exits 2 with one line naming the file and the field, and writes
# nothing (check needs no database: no schema appears). Unknown custom-field labels need the
# model, so keapsim serves it; without Keap, check warns and passes. `keapsync run` stops on an
# unknown label before anything is written.
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-$RANDOM"
it_keapsim --seed 3 --size 50 --api-key "$KEAP_API_KEY"

schemas() { sql "SELECT count(*) FROM information_schema.schemata WHERE schema_name IN ('keap', 'keapsync')"; }
n=0
for exp in "$KEAPSYNC_SRC"/tests/unit/jobs/bad/*.expect; do
    case=$(basename "$exp" .expect)
    dir="$IT_TMP/$case"
    mkdir -p "$dir"
    cp "$KEAPSYNC_SRC/tests/unit/jobs/bad/$case.json" "$dir/"
    rc=0
    KEAPSYNC_JOBS="$dir" "$KS" check >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
    eq "$case: exit code" 2 "$rc"
    eq "$case: one line on stderr" 1 "$(grep -c . "$IT_TMP/err" || true)"
    want="keapsync: error: \"$dir/$case.json\": $(head -n 1 "$exp")"
    eq "$case: names the file and the field" "$want" "$(head -n 1 "$IT_TMP/err")"
    n=$((n + 1))
done
check "the corpus has cases for every new key ($n)" test "$n" -ge 20
has_cases() { compgen -G "$KEAPSYNC_SRC/tests/unit/jobs/bad/$1*.expect" >/dev/null; }
for k in cf_ query_ desc_ columns_ del_; do
    check "the corpus covers $k" has_cases "$k"
done
eq "check wrote nothing (no schema)" 0 "$(schemas)"
check "the key never appears in any message" bash -c "! grep -rq -- '$KEAP_API_KEY' '$IT_TMP'/err '$IT_TMP'/out"

# Keap out of reach: a warning line, and check passes.
rc=0
KEAPSYNC_JOBS="$IT_TMP/cf_unknown" KEAP_BASE_URL="http://127.0.0.1:1/crm/rest" "$KS" check \
    >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "unreachable model: check passes" 0 "$rc"
check "unreachable model: one warning line" grep -q '^keapsync: warning: custom field labels not checked' "$IT_TMP/err"
eq "unreachable model: nothing else on stderr" 1 "$(grep -c . "$IT_TMP/err" || true)"
rc=0
KEAPSYNC_JOBS="$IT_TMP/cf_unknown" env -u KEAP_API_KEY "$KS" check >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "no credentials: check passes with a warning" "0 1" "$rc $(grep -c 'warning: custom field labels not checked' "$IT_TMP/err")"
rc=0
KEAPSYNC_JOBS="$IT_TMP/cf_unknown" KEAP_API_KEY=wrong-key "$KS" check >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "refused key: check passes with a warning" "0 1" "$rc $(grep -c 'warning: custom field labels not checked.*401' "$IT_TMP/err")"
models=$(curl -sf "$KSIM_URL/__admin/stats" | jq .accepted)
check "check read the model from keapsim ($models requests)" test "$models" -ge 2

# run: the same unknown label is exit 2 before anything is written (the model request is in
# the ledger: it was sent).
"$KS" migrate >/dev/null 2>&1
rc=0
KEAPSYNC_JOBS="$IT_TMP/cf_unknown" "$KS" run >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "run: unknown label exit code" 2 "$rc"
eq "run: the same message" "keapsync: error: \"$IT_TMP/cf_unknown/cf_unknown.json\": $(head -n 1 "$KEAPSYNC_SRC/tests/unit/jobs/bad/cf_unknown.expect")" "$(head -n 1 "$IT_TMP/err")"
eq "run: nothing written" 0 "$(sql "SELECT (SELECT count(*) FROM keapsync.checkpoints) + (SELECT count(*) FROM keapsync.runs) + (SELECT count(*) FROM information_schema.tables WHERE table_schema = 'keap')")"
rc=0
KEAPSYNC_JOBS="$IT_TMP/cf_unknown" KEAP_API_KEY=wrong-key "$KS" run >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
eq "run: a refused key at the model is exit 77" 77 "$rc"
check "run: the refused key is never shown" bash -c "! grep -q wrong-key '$IT_TMP/err'"
eq "run: the model requests are in the ledger" 2 "$(sql "SELECT COALESCE(sum(reserved), 0) FROM keapsync.quota_ledger")"
it_done
