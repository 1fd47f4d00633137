#!/usr/bin/env bash
# The configuration corpus (tests/corpus/config/NN-name/): malformed environment settings and
# job files, each stored with the one line it must produce. A case holds "env" (NAME=value
# lines; "-NAME" unsets NAME) and/or job files (*.json: the case's folder is then
# KEAPSYNC_JOBS), optionally "args" (the command, default "run"), and "expected" (the exact
# stderr line; @JOBS@ stands for the case's jobs folder). Every case must exit 2 with exactly
# that line, send no request to Keap and write nothing (a pg_dump of the whole database is
# the same before and after). Job-file cases give the same line from `keapsync check`.
# KEAPSYNC_CORPUS_BLESS=1 writes each case's actual line into a missing "expected" (for new
# cases only: review what it wrote).
. "$(dirname "$0")/lib.sh"

it_make_db
export KEAP_API_KEY="it-key-corpus-$RANDOM$RANDOM"
it_keapsim --seed 3 --size 20 --api-key "$KEAP_API_KEY"
"$KS" migrate >/dev/null
corpus="$KEAPSYNC_SRC/tests/corpus/config"

dump() { pg_dump --no-owner --no-privileges "$DATABASE_URL" | grep -v '^-- Dumped\|^\\restrict\|^\\unrestrict'; }
accepted() { curl -sf "$KSIM_URL/__admin/stats" | jq .accepted; }
dump >"$IT_TMP/before.sql"
req0=$(accepted)

n=0
for dir in "$corpus"/*/; do
    case=$(basename "$dir")
    work="$IT_TMP/cases/$case"
    mkdir -p "$work"
    cp "$dir"/* "$work/"
    envargs=()
    if compgen -G "$work/*.json" >/dev/null; then
        envargs+=("KEAPSYNC_JOBS=$work")
    fi
    if [ -f "$work/env" ]; then
        while IFS= read -r line || [ -n "$line" ]; do
            [ -n "$line" ] || continue
            case $line in
            -*) envargs=(-u "${line#-}" "${envargs[@]}") ;;
            *) envargs+=("$line") ;;
            esac
        done <"$work/env"
    fi
    read -ra args <"$work/args" 2>/dev/null || args=(run)
    cmds=("${args[*]}")
    compgen -G "$work/*.json" >/dev/null && cmds+=(check)
    for cmd in "${cmds[@]}"; do
        rc=0
        # shellcheck disable=SC2086
        env "${envargs[@]}" "$KS" $cmd >"$IT_TMP/out" 2>"$IT_TMP/err" || rc=$?
        got=$(head -n 1 "$IT_TMP/err")
        if [ ! -f "$dir/expected" ] && [ "${KEAPSYNC_CORPUS_BLESS:-0}" = 1 ]; then
            printf '%s\n' "${got//$work/@JOBS@}" >"$dir/expected"
        fi
        want=$(sed "s|@JOBS@|$work|g" "$dir/expected" 2>/dev/null || echo "(no expected file)")
        eq "$case ($cmd): exit code" 2 "$rc"
        eq "$case ($cmd): one line on stderr" 1 "$(grep -c '' "$IT_TMP/err" || true)"
        eq "$case ($cmd): the stored message" "$want" "$got"
    done
    n=$((n + 1))
done
check "the corpus has at least 30 cases ($n)" test "$n" -ge 30
eq "no request reached Keap" "$req0" "$(accepted)"
dump >"$IT_TMP/after.sql"
check "nothing written: the database dump is unchanged" diff -u "$IT_TMP/before.sql" "$IT_TMP/after.sql"
check "no secret in any message" bash -c "! grep -rqE -- '$KEAP_API_KEY|hunter2secret' '$IT_TMP'/err '$IT_TMP'/out"
it_case_end "malformed configuration (tests/corpus/config): exit 2, the stored line, nothing sent or written" "$n"
it_done
