#!/usr/bin/env bash
# The container image (issue 12), checked without a Docker daemon: CI has none, so the image
# is not built here. Statically, deploy/container/Dockerfile is a multi-stage build on
# debian:bookworm-slim whose last stage copies the binary from the build stage, runs as a
# non-root user, has a HEALTHCHECK, an ENTRYPOINT of keapsync, and no secret in ENV, ARG or
# a COPY; the build stage's cmake line builds here from exactly the files the image copies
# (the .dockerignore's list). The health check script runs against the throwaway Postgres:
# healthy only with a fresh heartbeat of this host, and a password in DATABASE_URL never
# reaches psql's command line.
. "$(dirname "$0")/lib.sh"

df="$KEAPSYNC_SRC/deploy/container/Dockerfile"
health="$KEAPSYNC_SRC/deploy/container/keapsync-health"
check "the Dockerfile exists" test -f "$df"

# Instructions with their continuation lines joined, comments dropped.
joined=$(sed -e '/^[[:space:]]*#/d' "$df" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta')
instr() { printf '%s\n' "$joined" | grep -iE "^[[:space:]]*$1([[:space:]]|$)" || true; }

froms=$(instr FROM)
nstages=$(printf '%s\n' "$froms" | grep -c . || true)
check "a multi-stage build ($nstages stages)" test "$nstages" -ge 2
base=$(instr ARG | sed -n 's/^ARG DEBIAN_IMAGE=\(.*\)/\1/p')
eq "the base image is Debian 12 slim" "debian:bookworm-slim" "$base"
eq "every stage starts from it" 0 \
    "$(printf '%s\n' "$froms" | grep -vcE '^FROM (\$\{DEBIAN_IMAGE\}|debian:bookworm-slim)( AS [a-z]+)?$' || true)"
last=$(printf '%s\n' "$joined" | awk 'toupper($1) == "FROM" { n++ } n == '"$nstages"'')
check "the last stage copies the binary from the build stage" \
    grep -qE '^COPY --from=build /build/keapsync /usr/local/bin/keapsync$' <<<"$last"
check "the last stage installs no compiler" bash -c '! grep -qE "build-essential|cmake|-dev( |$)" <<<"$1"' _ "$last"
user=$(printf '%s\n' "$last" | awk 'toupper($1) == "USER" { u = $2 } END { print u }')
check "the last stage runs as a non-root user ($user)" \
    bash -c '[ -n "$1" ] && [[ ! "$1" =~ ^(root|0)(:|$) ]]' _ "$user"
check "the user is created in the image (uid ${user%%:*})" grep -q "useradd .*--uid ${user%%:*} " <<<"$last"
check "a HEALTHCHECK runs keapsync-health" \
    grep -qE '^HEALTHCHECK .*CMD \["/usr/local/bin/keapsync-health"\]' <<<"$last"
check "the health script is copied in" grep -qE '^COPY deploy/container/keapsync-health /usr/local/bin/keapsync-health$' <<<"$last"
check "ENTRYPOINT is keapsync, CMD run" bash -c 'grep -qx "ENTRYPOINT \[\"/usr/local/bin/keapsync\"\]" <<<"$1" && grep -qx "CMD \[\"run\"\]" <<<"$1"' _ "$last"
secret='(KEY|SECRET|PASSWORD|PASSWD|TOKEN|DATABASE_URL|PGPASS)'
eq "no secret in ENV or ARG" "" "$(instr '(ENV|ARG)' | grep -iE "$secret" || true)"
eq "no key file copied in" "" "$(instr '(COPY|ADD)' | grep -iE 'key|secret|pgpass|\.env' | grep -v keapsync-health || true)"
eq "no URL with a password" "" "$(grep -nE '://[^/@ ]*:[^/@ ]*@' "$df" || true)"

# The build stage, here: its cmake line on the files the image copies (the .dockerignore's).
ctx="$IT_TMP/ctx"
mkdir -p "$ctx"
while read -r path; do
    cp -r "$KEAPSYNC_SRC/$path" "$ctx/$path"
done < <(sed -n 's#^!\([^*]*\)\(/\*\*\)\{0,1\}$#\1#p' "$KEAPSYNC_SRC/deploy/container/Dockerfile.dockerignore" | grep -v '^deploy/')
for c in $(instr COPY | awk '$2 !~ /^--/ && $2 !~ /^deploy/ { print $2 }'); do
    check "the image's COPY $c is in the build context" test -e "$ctx/$c"
done
cmake_line=$(instr RUN | grep -o 'cmake -S \. -B /build [^&]*' | head -1)
check "the build stage configures with cmake" test -n "$cmake_line"
cmake_line=${cmake_line//\/build/$IT_TMP\/build}
if (cd "$ctx" && eval "$cmake_line" >"$IT_TMP/cmake.out" 2>&1 && cmake --build "$IT_TMP/build" -j2 >>"$IT_TMP/cmake.out" 2>&1); then
    check "the build stage's binary runs" "$IT_TMP/build/keapsync" --version
else
    tail -20 "$IT_TMP/cmake.out" >&2
    check "the build stage builds from the image's files" false
fi

# --- the health check -------------------------------------------------------------------------
it_make_db
"$KS" migrate >/dev/null 2>&1
rc=0
"$health" >"$IT_TMP/h.out" 2>&1 || rc=$?
eq "no heartbeat: unhealthy (exit 1)" 1 "$rc"
check "it says why" grep -q "unhealthy: no fresh keapsync heartbeat of host $(hostname)" "$IT_TMP/h.out"
sql "INSERT INTO keapsync.leases (name, holder, expires_at) VALUES
     ('daemon:t1', 'another-pod:1:x', now() + interval '1 min'),
     ('daemon:t1-old', '$(hostname):1:x', now() - interval '1 s')" >/dev/null
rc=0
"$health" >"$IT_TMP/h.out" 2>&1 || rc=$?
eq "another host's heartbeat and an expired one of ours: unhealthy" 1 "$rc"
sql "INSERT INTO keapsync.leases (name, holder, expires_at) VALUES
     ('daemon:t1', '$(hostname):42:y', now() + interval '1 min')
     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder" >/dev/null
rc=0
"$health" >"$IT_TMP/h.out" 2>&1 || rc=$?
eq "a fresh daemon heartbeat of this host: healthy" 0 "$rc"
rc=0
KEAPSYNC_TENANT=t2 "$health" >"$IT_TMP/h.out" 2>&1 || rc=$?
eq "another tenant's heartbeat does not count for KEAPSYNC_TENANT=t2" 1 "$rc"
rc=0
KEAPSYNC_TENANT=t1 "$health" >"$IT_TMP/h.out" 2>&1 || rc=$?
eq "the tenant's own heartbeat does" 0 "$rc"

# A password in the URL goes to PGPASSWORD, not to psql's argv: a psql ahead in PATH records
# what it was given, then runs the real one.
mkdir -p "$IT_TMP/bin"
cat >"$IT_TMP/bin/psql" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$*" >"$IT_TMP/psql.argv"
printf '%s\n' "\${PGPASSWORD:-}" >"$IT_TMP/psql.pass"
exec "$(command -v psql)" "\$@"
EOF
chmod +x "$IT_TMP/bin/psql"
pw='s3cr%2Ft%40p:ss'
url_pw=$(printf '%s' "$DATABASE_URL" | sed "s#^\(postgres[a-z]*://\)\([^@/:]*\)@#\1\2:$pw@#")
check "the test URL carries a password" grep -qF ":$pw@" <<<"$url_pw"
rc=0
DATABASE_URL=$url_pw PATH="$IT_TMP/bin:$PATH" "$health" >"$IT_TMP/h.out" 2>&1 || rc=$?
eq "healthy through a URL with a password (trust auth ignores it)" 0 "$rc"
check "psql's argv holds no password" bash -c '! grep -qE "s3cr|p:ss" "$1"' _ "$IT_TMP/psql.argv"
eq "the password went to PGPASSWORD, percent-decoded" 's3cr/t@p:ss' "$(cat "$IT_TMP/psql.pass")"
rc=0
DATABASE_URL="postgresql://127.0.0.1:1/none" PGCONNECT_TIMEOUT=2 "$health" >"$IT_TMP/h.out" 2>&1 || rc=$?
eq "no database: unhealthy" 1 "$rc"
check "it says the leases cannot be read" grep -q "unhealthy: cannot read keapsync.leases" "$IT_TMP/h.out"
it_done
