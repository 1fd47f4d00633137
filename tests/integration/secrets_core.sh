#!/usr/bin/env bash
# Secrets and core files (issue 13): keapsync turns core dumps off for itself (PR_SET_DUMPABLE),
# since a core would hold the API key, and curl's and libpq's copies of it cannot be scrubbed.
#   control   a shell holding a test secret in its environment, aborted with core dumps
#             allowed (ulimit -c unlimited): the kernel writes a core, and the secret is in
#             it, so this machine does write cores and the search finds a secret in one;
#   default   keapsync mid-sync, with a distinctive key, aborted the same way: no core file;
#   opt-in    the same with KEAPSYNC_CORE_DUMPS=1: a core file (not under AddressSanitizer,
#             which turns cores off itself), and the key is in it: the setting is what keeps
#             the key out.
# Skipped (exit 77) when the kernel hands cores to a program (core_pattern "|...") instead of
# writing them in the process's directory: there is no file to look for then.
. "$(dirname "$0")/lib.sh"

pattern=$(cat /proc/sys/kernel/core_pattern 2>/dev/null || echo "?")
case $pattern in
"|"* | "?" | */*)
    echo "secrets_core: SKIPPED: core_pattern is \"$pattern\": cores do not go to the process's directory"
    exit 77
    ;;
esac
ulimit -c unlimited 2>/dev/null || { echo "secrets_core: SKIPPED: cannot allow core files (ulimit -c)"; exit 77; }

# core_in DIR: the core file the kernel wrote in DIR, or nothing
core_in() { find "$1" -maxdepth 1 -type f -name 'core*' | head -1; }
secret_in() { grep -caF "$2" "$1" || true; } # FILE NEEDLE: lines holding it

# ---- control: a dumpable process's core holds what its memory held
mkdir -p "$IT_TMP/control"
ctl="ksCTLsecret-$RANDOM$RANDOM$RANDOM"
(cd "$IT_TMP/control" && KS_TEST_SECRET=$ctl bash -c 'kill -ABRT $$') 2>/dev/null || true
core=$(core_in "$IT_TMP/control")
if [ -z "$core" ]; then
    echo "secrets_core: SKIPPED: the kernel wrote no core for an aborted shell (core_pattern \"$pattern\")"
    exit 77
fi
check "control: an aborted shell left a core file ($(basename "$core"))" test -s "$core"
check "control: the secret in its environment is in the core" test "$(secret_in "$core" "$ctl")" -gt 0

export KEAP_API_KEY="ksCOREkey-$RANDOM$RANDOM$RANDOM$RANDOM"
it_keapsim --seed 9 --size 3000 --api-key "$KEAP_API_KEY" --no-limits
mkdir -p "$IT_TMP/jobs"
jq '.page_size = 50 | del(.deletes)' "$KEAPSYNC_SRC/jobs/contacts.json" >"$IT_TMP/jobs/contacts.json"
export KEAPSYNC_JOBS="$IT_TMP/jobs" KEAPSYNC_LIMITS=5/s,0/min,0/day # 60 pages: 12 s
"$KS" migrate >/dev/null 2>&1

# abort_mid_run DIR [ENV...]: keapsync run in DIR, aborted (SIGABRT) once it sent 3 requests;
# sets RC (the wait status) and SENT.
abort_mid_run() {
    local dir=$1 pid r0 i
    shift
    mkdir -p "$dir"
    r0=$(ksim_stat .requests)
    (cd "$dir" && exec env "$@" "$KS" run >"$dir/out" 2>"$dir/err") &
    pid=$!
    IT_PIDS+=("$pid")
    for i in $(seq 1 200); do
        [ $(($(ksim_stat .requests) - r0)) -ge 3 ] && break
        sleep 0.05
    done
    SENT=$(($(ksim_stat .requests) - r0))
    kill -ABRT "$pid"
    RC=0
    wait "$pid" 2>/dev/null || RC=$?
    sleep 0.2 # the kernel writes the core before the parent is told: this is only for slow disks
}

it_case_begin
abort_mid_run "$IT_TMP/default"
check "default: keapsync was mid-sync ($SENT requests sent with the key)" test "$SENT" -ge 3
eq "default: it died of SIGABRT (128 + 6)" 134 "$RC"
eq "default: no core file" "" "$(core_in "$IT_TMP/default")"

if it_sanitized; then
    it_log "opt-in: skipped: $KS is built with AddressSanitizer, which writes no cores"
else
    abort_mid_run "$IT_TMP/optin" KEAPSYNC_CORE_DUMPS=1
    eq "opt-in: it died of SIGABRT" 134 "$RC"
    core=$(core_in "$IT_TMP/optin")
    check "opt-in: KEAPSYNC_CORE_DUMPS=1 leaves a core file" test -n "$core"
    check "opt-in: and the key is in it (what the default keeps out)" \
        test "$(secret_in "${core:-/dev/null}" "$KEAP_API_KEY")" -gt 0
fi
it_case_end "keapsync aborted mid-sync with core dumps allowed: no core file to hold the key" 1
rm -f "$IT_TMP"/*/core* # large, and they hold the test key
it_done
