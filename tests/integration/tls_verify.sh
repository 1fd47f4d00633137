#!/usr/bin/env bash
# TLS verification against a real HTTPS keapsim (libmicrohttpd + GnuTLS, --tls-cert/--tls-key)
# with throwaway self-signed certificates made here by openssl:
#   - the certificate trusted through KEAPSYNC_CA_FILE: the sync lands, rows equal the truth;
#   - no CA given: the run fails at once (exit 1, no retries) naming the TLS problem;
#   - a certificate for another name, its CA trusted: fails on the host name;
#   - KEAPSYNC_TLS_INSECURE=1 with 127.0.0.1: syncs without a CA;
#   - KEAPSYNC_TLS_INSECURE=1 with a non-loopback host (and token URL): exit 2 before any
#     request;
#   - KEAPSYNC_CA_FILE unreadable or not PEM: exit 2 before any request.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || { echo "openssl is not installed (deploy/install-deps.sh --tests)" >&2; exit 1; }

it_make_db
mkdir -p "$IT_TMP/jobs"
cp "$KEAPSYNC_SRC/jobs/contacts.json" "$IT_TMP/jobs/"
export KEAPSYNC_JOBS="$IT_TMP/jobs"
export KEAP_API_KEY="it-key-$RANDOM$RANDOM"
unset KEAPSYNC_CA_FILE KEAPSYNC_TLS_INSECURE KEAP_TOKEN_URL KEAP_CLIENT_ID

# Two self-signed certificates: one for 127.0.0.1 and localhost, one for another name only.
cert() { # cert NAME SAN
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$IT_TMP/$1.key" \
        -out "$IT_TMP/$1.pem" -subj "/CN=$1" -addext "subjectAltName=$2" 2>/dev/null
}
cert loopback "IP:127.0.0.1,DNS:localhost"
cert other.example "DNS:other.example"

# ksim_tls NAME ARGS...: an HTTPS keapsim serving certificate NAME; sets KSIM_URL (https) and
# KEAP_BASE_URL. lib.sh's it_keapsim speaks plain HTTP.
ksim_tls() {
    local name=$1 out="$IT_TMP/keapsim.$RANDOM.out" port="" i
    shift
    "$KSIM" --port 0 --tls-cert "$IT_TMP/$name.pem" --tls-key "$IT_TMP/$name.key" "$@" \
        >"$out" 2>"$out.err" &
    IT_PIDS+=("$!")
    for i in $(seq 1 100); do
        port=$(sed -n 's/^keapsim listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out" | head -1)
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$out.err" >&2; echo "keapsim did not start" >&2; return 1; }
    KSIM_URL="https://127.0.0.1:$port"
    KSIM_PORT=$port
    export KEAP_BASE_URL="$KSIM_URL/crm/rest"
}
# The admin endpoints over HTTPS, trusting certificate $1 and asking for the host name it
# names ($2; other.example resolved to 127.0.0.1).
kstat() {
    curl -sf --cacert "$IT_TMP/$1.pem" --resolve "$2:$KSIM_PORT:127.0.0.1" \
        "https://$2:$KSIM_PORT/__admin/stats" | jq -r "$3"
}

ksim_tls loopback --seed 7 --size 300 --api-key "$KEAP_API_KEY" --no-limits --quiet
check "keapsim serves HTTPS (curl trusting its certificate)" \
    curl -sf --cacert "$IT_TMP/loopback.pem" -o /dev/null "$KSIM_URL/__admin/stats"
check "migrate" "$KS" migrate

# run_ks NAME ENV...: keapsync run with ENV; stdout+stderr in $IT_TMP/NAME.out, rc in RC.
run_ks() {
    local name=$1
    shift
    RC=0
    env "$@" "$KS" run >"$IT_TMP/$name.out" 2>&1 || RC=$?
    sed 's/^/    /' "$IT_TMP/$name.out" | tail -5 >&2
}

# No CA: libcurl's default store does not know this certificate.
before=$(kstat loopback 127.0.0.1 .requests)
run_ks noca
eq "without KEAPSYNC_CA_FILE the run fails (exit 1)" 1 "$RC"
check "the failure names TLS verification and the self-signed certificate" \
    grep -q 'TLS verification failed: SSL certificate problem: self.signed certificate' "$IT_TMP/noca.out"
check "the failure names the job" grep -q 'job "contacts"' "$IT_TMP/noca.out"
eq "nothing was served to the unverified run (keapsim saw no request)" "$before" "$(kstat loopback 127.0.0.1 .requests)"
eq "no row landed" 0 "$(sql "SELECT count(*) FROM keap.contacts")"
check "it did not retry (one attempt, no retry lines)" \
    test "$(grep -c 'retry' "$IT_TMP/noca.out" || true)" -eq 0

# The certificate as the CA bundle: verified, synced.
run_ks ca KEAPSYNC_CA_FILE="$IT_TMP/loopback.pem"
eq "with KEAPSYNC_CA_FILE the run exits 0" 0 "$RC"
curl -sf --cacert "$IT_TMP/loopback.pem" "$KSIM_URL/__admin/truth?resource=contacts" >"$IT_TMP/truth.jsonl"
sql "CREATE TABLE truth_contacts (doc jsonb)"
psql "$DATABASE_URL" -qAt -v ON_ERROR_STOP=1 \
    -c "\\copy truth_contacts (doc) FROM '$IT_TMP/truth.jsonl' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
truth_n=$(sql "SELECT count(*) FROM truth_contacts")
eq "keapsim served the configured tenant" 300 "$truth_n"
eq "rows equal the truth over HTTPS" "$truth_n" "$(sql "SELECT count(*) FROM keap.contacts")"
eq "every record equals the served one" 0 \
    "$(sql "SELECT count(*) FROM truth_contacts t FULL JOIN keap.contacts c ON c.id = (t.doc->>'id')::bigint WHERE c.data IS DISTINCT FROM t.doc")"

# localhost is in the certificate too: the host name check passes by name.
run_ks ca_localhost KEAPSYNC_CA_FILE="$IT_TMP/loopback.pem" KEAP_BASE_URL="${KEAP_BASE_URL/127.0.0.1/localhost}"
eq "https://localhost with the CA trusted exits 0" 0 "$RC"

# A certificate for another name, its CA trusted: the host name check fails.
ksim_tls other.example --seed 7 --size 300 --api-key "$KEAP_API_KEY" --no-limits --quiet
sql "TRUNCATE keap.contacts; DELETE FROM keapsync.checkpoints"
run_ks mismatch KEAPSYNC_CA_FILE="$IT_TMP/other.example.pem"
eq "a certificate for another name fails the run (exit 1)" 1 "$RC"
check "the failure names the host name mismatch" \
    grep -qE 'TLS verification failed: .*(subject name|does not match|no alternative)' "$IT_TMP/mismatch.out"
eq "no row landed from the mismatched host" 0 "$(sql "SELECT count(*) FROM keap.contacts")"

# Insecure, loopback: verification off for 127.0.0.1 only; the wrong name does not matter.
run_ks insecure KEAPSYNC_TLS_INSECURE=1
eq "KEAPSYNC_TLS_INSECURE=1 with 127.0.0.1 syncs (exit 0)" 0 "$RC"
check "it warns that verification is off" grep -q 'TLS certificates of loopback hosts are not verified' "$IT_TMP/insecure.out"
eq "rows equal the truth (insecure, loopback)" "$truth_n" "$(sql "SELECT count(*) FROM keap.contacts")"

# Insecure, any other host: refused at start, before any request (the host does not exist:
# a request would fail differently, and later).
refused() { # refused NAME EXPECTED-GREP ENV...
    local name=$1 pat=$2 before
    shift 2
    before=$(kstat other.example other.example .requests)
    run_ks "$name" "$@"
    eq "$name: exit 2" 2 "$RC"
    check "$name: one error line naming the problem" grep -qE "$pat" "$IT_TMP/$name.out"
    eq "$name: one line of output" 1 "$(wc -l <"$IT_TMP/$name.out")"
    eq "$name: no request reached keapsim" "$before" "$(kstat other.example other.example .requests)"
}
runs_before=$(sql "SELECT count(*) FROM keapsync.runs")
refused insecure_remote "KEAPSYNC_TLS_INSECURE=1 turns TLS verification off only for a loopback test host, and KEAP_BASE_URL's host \"keap.example.com\" is not one" \
    KEAPSYNC_TLS_INSECURE=1 KEAP_BASE_URL=https://keap.example.com/crm/rest
refused insecure_default "KEAP_BASE_URL's host \"api.infusionsoft.com\" is not one" \
    KEAPSYNC_TLS_INSECURE=1 KEAP_BASE_URL=
refused insecure_near_loopback "host \"127.0.0.1.nip.io\" is not one" \
    KEAPSYNC_TLS_INSECURE=1 KEAP_BASE_URL=https://127.0.0.1.nip.io/crm/rest
refused insecure_token "KEAP_TOKEN_URL's host \"auth.example.com\" is not one" \
    KEAPSYNC_TLS_INSECURE=1 KEAP_TOKEN_URL=https://auth.example.com/token
refused insecure_bad_value 'invalid KEAPSYNC_TLS_INSECURE "yes"' KEAPSYNC_TLS_INSECURE=yes
refused ca_missing "KEAPSYNC_CA_FILE \"$IT_TMP/nope.pem\" cannot be read: No such file or directory" \
    KEAPSYNC_CA_FILE="$IT_TMP/nope.pem"
echo "not a certificate" >"$IT_TMP/junk.pem"
refused ca_not_pem "KEAPSYNC_CA_FILE \"$IT_TMP/junk.pem\" holds no PEM certificate" \
    KEAPSYNC_CA_FILE="$IT_TMP/junk.pem"
refused ca_a_directory "KEAPSYNC_CA_FILE \"$IT_TMP\" cannot be read" KEAPSYNC_CA_FILE="$IT_TMP"
eq "the refused starts recorded no run" "$runs_before" "$(sql "SELECT count(*) FROM keapsync.runs")"

# check (no database) with a verified CA reaches keapsim; without, it warns.
rc=0; KEAPSYNC_TLS_INSECURE=1 KEAP_BASE_URL=https://keap.example.com/crm/rest "$KS" check >/dev/null 2>&1 || rc=$?
eq "check refuses insecure + a remote host too (exit 2)" 2 "$rc"

it_done
