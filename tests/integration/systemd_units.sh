#!/usr/bin/env bash
# The systemd units of deploy/systemd (issue 12): `systemd-analyze verify` accepts every one
# of them without a warning (each a copy whose ExecStart names the built binary, since verify
# needs it to exist; templates as an instance), `systemd-analyze security` rates each service
# at most 2.0, and the options the README promises are there: the nightly run counts 75 as
# success, the daemon restarts on failure but not on 2 or 77, the hardening, and no secret in
# a unit (the key and the database password come in as credentials). keapsyncctl is also
# run through shellcheck when that is installed. Needs no database.
set -euo pipefail
: "${KEAPSYNC_BUILD:?KEAPSYNC_BUILD is not set (run through ctest)}"
: "${KEAPSYNC_SRC:?KEAPSYNC_SRC is not set}"
src="$KEAPSYNC_SRC/deploy/systemd"
tmp=$(mktemp -d /tmp/ks-it-systemd.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); echo "[systemd_units] ok: $*" >&2; }
bad() { fails=$((fails + 1)); echo "[systemd_units] FAILED: $*" >&2; }

command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }

services=(keapsync.service keapsync-daemon.service keapsync@.service keapsync-daemon@.service)
timers=(keapsync.timer keapsync@.timer)
for u in "${services[@]}" "${timers[@]}"; do
    [ -f "$src/$u" ] && ok "$u exists" || bad "$u is missing"
done

# Copies under test names: the binary is the built one; a template becomes instance "acme".
inst() { case "$1" in *@.*) echo "${1/@./@acme.}" ;; *) echo "$1" ;; esac; }
for u in "${services[@]}" "${timers[@]}"; do
    sed "s#/usr/local/bin/keapsync#$KEAPSYNC_BUILD/keapsync#g" "$src/$u" >"$tmp/$u"
    [ "$(inst "$u")" = "$u" ] || ln -s "$u" "$tmp/$(inst "$u")"
done
grep -q "$KEAPSYNC_BUILD/keapsync" "$tmp/keapsync.service" || bad "the copy names the built binary"

# verify: exit 0 and not one line of complaint (unknown keys are only warnings).
for u in "${services[@]}" "${timers[@]}"; do
    i=$(inst "$u")
    rc=0
    (cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "./$i") >"$tmp/verify.out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] && ! grep -v '^$' "$tmp/verify.out" | grep -q .; then
        ok "systemd-analyze verify $i"
    else
        bad "systemd-analyze verify $i (exit $rc): $(head -5 "$tmp/verify.out")"
    fi
done
# The check bites: an unknown key and a missing binary are caught.
cp "$tmp/keapsync.service" "$tmp/broken.service"
echo "ProtectSytem=strict" >>"$tmp/broken.service"
(cd "$tmp" && systemd-analyze verify --man=no ./broken.service) >"$tmp/verify.out" 2>&1 || true
grep -q "Unknown key" "$tmp/verify.out" && ok "verify reports a misspelt option" || bad "verify missed a misspelt option"
sed "s#$KEAPSYNC_BUILD/keapsync#$tmp/no-such-binary#" "$tmp/keapsync.service" >"$tmp/broken2.service"
if (cd "$tmp" && systemd-analyze verify --man=no ./broken2.service) >/dev/null 2>&1; then
    bad "verify accepted a unit whose binary does not exist"
else
    ok "verify refuses a unit whose binary does not exist"
fi

for u in "${services[@]}"; do
    i=$(inst "$u")
    level=$(cd "$tmp" && systemd-analyze security --offline=yes "./$i" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
        ok "$i: systemd-analyze security exposure $level <= 2.0"
    else
        bad "$i: systemd-analyze security exposure [$level] above 2.0"
    fi
done

# has UNIT KEY=VALUE: the unit sets exactly that line.
has() {
    if grep -qxF "$2" "$src/$1"; then ok "$1: $2"; else bad "$1: no line $2"; fi
}
hardening=(
    DynamicUser=yes NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes
    PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes ProtectControlGroups=yes
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" RestrictNamespaces=yes
    RestrictSUIDSGID=yes LockPersonality=yes MemoryDenyWriteExecute=yes CapabilityBoundingSet=
    SystemCallArchitectures=native SystemCallFilter=@system-service
)
for u in "${services[@]}"; do
    for h in "${hardening[@]}"; do has "$u" "$h"; done
    has "$u" "Environment=KEAP_API_KEY_FILE=%d/keap-api-key"
    has "$u" "Environment=PGPASSFILE=%d/pgpass"
    grep -q '^LoadCredential=keap-api-key:/etc/keapsync/' "$src/$u" && ok "$u: the key is a credential" ||
        bad "$u: the key is not a LoadCredential="
    # No secret in a unit: no key, no password, no URL with a password.
    if grep -nE '^Environment=(KEAP_API_KEY|KEAP_CLIENT_SECRET|PGPASSWORD)=|^Environment=DATABASE_URL=|://[^/@ ]*:[^/@ ]*@' "$src/$u"; then
        bad "$u: a secret in the unit"
    else
        ok "$u: no secret in the unit"
    fi
done
for u in keapsync.service keapsync@.service; do
    has "$u" "Type=oneshot"
    has "$u" "SuccessExitStatus=75"
    has "$u" "ExecStart=/usr/local/bin/keapsync run"
done
for u in keapsync-daemon.service keapsync-daemon@.service; do
    has "$u" "ExecStart=/usr/local/bin/keapsync daemon"
    has "$u" "Restart=on-failure"
    has "$u" "RestartPreventExitStatus=2 77"
done
has keapsync@.service "Environment=KEAPSYNC_SCHEMA=keap_%i"
has keapsync-daemon@.service "Environment=KEAPSYNC_SCHEMA=keap_%i"
has keapsync@.service "EnvironmentFile=/etc/keapsync/%i/env"
for t in "${timers[@]}"; do
    has "$t" "OnCalendar=*-*-* 00:10:00 UTC"
    has "$t" "Persistent=true"
done

# The manual run: no secret on a command line, no file a non-root shell must read.
readme="$src/README.md"
if grep -nE 'env \$\(cat|://[^/@ ]*:[^/@ ]*@|sudo -u keapsync' "$readme"; then
    bad "deploy/systemd/README.md puts a secret on a command line or reads root's file in the caller's shell"
else
    ok "deploy/systemd/README.md runs commands through keapsyncctl"
fi
bash -n "$src/keapsyncctl" && ok "keapsyncctl parses" || bad "keapsyncctl does not parse"
if command -v shellcheck >/dev/null; then
    shellcheck "$src/keapsyncctl" && ok "keapsyncctl passes shellcheck" || bad "shellcheck keapsyncctl"
fi
rc=0
"$src/keapsyncctl" --tenant 'Bad;name' status 2>"$tmp/ctl.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q 'keapsyncctl: error: tenant' "$tmp/ctl.err" && ok "keapsyncctl refuses a bad tenant name (exit 2)" ||
    bad "keapsyncctl --tenant 'Bad;name': exit $rc"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
