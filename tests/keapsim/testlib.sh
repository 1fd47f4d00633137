# tests/keapsim/testlib.sh: helpers for the keapsim_*.sh integration scripts (sourced, not run).
# Words: a "sim" is one keapsim process started here; ks_start records its pid so the EXIT
# trap kills it, whatever happens to the script.
#
#   ks_start VAR [keapsim flags...]   start keapsim on --port 0; VAR gets the port
#                                     (environment from the KS_ENV array)
#   ks_get PORT PATH [curl args...]   GET http://127.0.0.1:PORT/PATH with the default key
#   ks_ok MESSAGE / ks_fail MESSAGE   report a check

: "${KEAPSYNC_BUILD:?KEAPSYNC_BUILD must name the build directory}"
KEAPSIM_BIN="$KEAPSYNC_BUILD/keapsim"
KS_KEY="keapsim-test-key"
KS_TMP=$(mktemp -d /tmp/keapsim-test.XXXXXX)
KS_PIDS=()
KS_ENV=()   # extra VAR=value for the next ks_start (e.g. LD_PRELOAD for faketime)
KS_CHECKS=0

ks_cleanup() {
    local p bad=0 f
    for p in "${KS_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    # a sanitizer build reports on stderr; never let a report vanish with the temp dir
    for f in "$KS_TMP"/*.err; do
        [ -e "$f" ] || continue
        if grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$f"; then
            echo "FAIL: keapsim reported a sanitizer error:" >&2
            head -n 40 "$f" >&2
            bad=1
        fi
    done
    rm -rf "$KS_TMP"
    [ "$bad" = 0 ] || exit 1
}
trap ks_cleanup EXIT

ks_fail() {
    echo "FAIL: $*" >&2
    exit 1
}

ks_ok() {
    KS_CHECKS=$((KS_CHECKS + 1))
    echo "ok $KS_CHECKS - $*"
}

ks_start() {
    local var=$1 out i line port
    shift
    [ -x "$KEAPSIM_BIN" ] || ks_fail "no keapsim binary at $KEAPSIM_BIN"
    out="$KS_TMP/sim.$RANDOM.$RANDOM"
    env "${KS_ENV[@]}" "$KEAPSIM_BIN" --port 0 --quiet "$@" >"$out.out" 2>"$out.err" &
    KS_PIDS+=($!)
    for i in $(seq 1 1200); do # at most 60 s: it renders its tenant first
        line=$(head -n 1 "$out.out" 2>/dev/null || true)
        if [ -n "$line" ]; then
            break
        fi
        kill -0 "$!" 2>/dev/null || ks_fail "keapsim exited: $(cat "$out.err")"
        sleep 0.05
    done
    [[ "$line" =~ ^keapsim\ listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]] ||
        ks_fail "unexpected first line from keapsim: \"$line\""
    port=${BASH_REMATCH[1]}
    printf -v "$var" '%s' "$port"
}

ks_get() {
    local port=$1 path=$2
    shift 2
    curl -sS --max-time 20 -H "X-Keap-API-Key: $KS_KEY" "$@" "http://127.0.0.1:$port/$path"
}

ks_admin() {
    local method=$1 port=$2 path=$3
    curl -sS --max-time 20 -X "$method" "http://127.0.0.1:$port/__admin/$path"
}

# ks_header FILE NAME: the value of header NAME (case-insensitive) in a curl -D dump.
ks_header() {
    tr -d '\r' <"$1" | awk -v n="$(echo "$2" | tr 'A-Z' 'a-z')" \
        'BEGIN{FS=": "} tolower($1)==n {print substr($0, length($1)+3); exit}'
}
