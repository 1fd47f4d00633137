#!/usr/bin/env bash
# The Kubernetes manifests of deploy/k8s (issue 12). Every document is parsed with a real YAML
# parser and validated against the Kubernetes API schemas (npm's kubernetes-models, installed
# by deploy/install-deps.sh into deploy/k8s/validate; see validate.mjs), unknown fields
# included. Then what the README promises: a CronJob at 00:10 UTC whose container turns exit
# 75 into success (run here with a stand-in keapsync) and whose Job fails at once on 2 and
# 77; a one-replica Deployment of `keapsync daemon` with HTTP probes on its /healthz; the
# key and the database URL only from the Secret, whose values are placeholders; non-root
# pods (the image's uid) with a read-only root; every ConfigMap and Secret referenced exists;
# the jobs ConfigMap equals jobs/*.json, and keapsync accepts them mounted the way a
# ConfigMap volume lays them out (..data symlinks). Needs no database.
set -euo pipefail
: "${KEAPSYNC_BUILD:?KEAPSYNC_BUILD is not set (run through ctest)}"
: "${KEAPSYNC_SRC:?KEAPSYNC_SRC is not set}"
k8s="$KEAPSYNC_SRC/deploy/k8s"
tmp=$(mktemp -d /tmp/ks-it-k8s.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); echo "[k8s_manifests] ok: $*" >&2; }
bad() { fails=$((fails + 1)); echo "[k8s_manifests] FAILED: $*" >&2; }
eq() { if [ "$2" = "$3" ]; then ok "$1 ($3)"; else bad "$1: expected [$2], got [$3]"; fi; }

command -v node >/dev/null || { echo "node not found (deploy/install-deps.sh installs nodejs)" >&2; exit 1; }
[ -d "$k8s/validate/node_modules/kubernetes-models" ] ||
    { echo "deploy/k8s/validate/node_modules is missing (run deploy/install-deps.sh --tests)" >&2; exit 1; }

manifests=("$k8s"/*.yaml)
eq "manifests" "configmap-env.yaml configmap-jobs.yaml cronjob.yaml deployment.yaml secret.yaml" \
    "$(cd "$k8s" && echo *.yaml)"
if node "$k8s/validate/validate.mjs" "$tmp" "${manifests[@]}" 2>"$tmp/validate.err"; then
    ok "every document is valid against the Kubernetes schemas"
else
    bad "schema validation: $(cat "$tmp/validate.err")"
fi
# The validator bites: a misspelt field, a wrong type and a missing required field.
printf '%s\n' 'apiVersion: apps/v1' 'kind: Deployment' 'metadata: {name: x}' 'spec:' \
    '  selector: {}' '  template: {spec: {containers: [{name: a, imagee: b}]}}' >"$tmp/bad1.yaml"
printf '%s\n' 'apiVersion: batch/v1' 'kind: CronJob' 'metadata: {name: x}' 'spec:' \
    '  schedule: 5' '  jobTemplate: {spec: {template: {spec: {containers: [{name: a}]}}}}' >"$tmp/bad2.yaml"
printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: x, name: y}' >"$tmp/bad3.yaml"
for b in bad1 bad2 bad3; do
    if node "$k8s/validate/validate.mjs" "$tmp" "$tmp/$b.yaml" 2>"$tmp/$b.err"; then
        bad "the validator accepted $b.yaml"
    else
        ok "the validator refuses $b.yaml: $(head -1 "$tmp/$b.err")"
    fi
done

doc() { jq -c --arg k "$2" '.[] | select(.kind == $k)' "$tmp/$1.json"; }
cron=$(doc cronjob.yaml CronJob)
dep=$(doc deployment.yaml Deployment)
sec=$(doc secret.yaml Secret)
env_cm=$(doc configmap-env.yaml ConfigMap)
jobs_cm=$(doc configmap-jobs.yaml ConfigMap)
q() { local o=$1; shift; jq -r "$@" <<<"$o"; }

# --- the CronJob -----------------------------------------------------------------------------
eq "CronJob: 00:10" "10 0 * * *" "$(q "$cron" .spec.schedule)"
eq "CronJob: in UTC" "Etc/UTC" "$(q "$cron" .spec.timeZone)"
eq "CronJob: never two runs of a tenant at once" "Forbid" "$(q "$cron" .spec.concurrencyPolicy)"
eq "CronJob: restartPolicy" "Never" "$(q "$cron" .spec.jobTemplate.spec.template.spec.restartPolicy)"
eq "CronJob: 2 and 77 fail the Job at once" "FailJob [2,77] keapsync" \
    "$(q "$cron" '.spec.jobTemplate.spec.podFailurePolicy.rules[] | select(.action == "FailJob") | "\(.action) \(.onExitCodes.values | tostring) \(.onExitCodes.containerName)"')"
eq "CronJob: migrate first" '["migrate"]' "$(q "$cron" '.spec.jobTemplate.spec.template.spec.initContainers[0].args | tostring')"
# The container's command, with a stand-in keapsync that exits with the code we ask of it.
script=$(q "$cron" '.spec.jobTemplate.spec.template.spec.containers[] | select(.name == "keapsync") | .args[0]')
shell=$(q "$cron" '.spec.jobTemplate.spec.template.spec.containers[] | select(.name == "keapsync") | .command | join(" ")')
eq "CronJob: the container runs a shell" "/bin/sh -c" "$shell"
check_script=${script//\/usr\/local\/bin\/keapsync/$tmp/fake-keapsync}
check_script=${check_script//\$/\\\$}
printf '#!/bin/sh\n[ "$1" = run ] || exit 99\nexit "$FAKE_RC"\n' >"$tmp/fake-keapsync"
chmod +x "$tmp/fake-keapsync"
for pair in 0:0 75:0 1:1 2:2 77:77; do
    rc=0
    FAKE_RC=${pair%%:*} /bin/sh -c "$(eval "printf '%s' \"$check_script\"")" || rc=$?
    eq "CronJob: keapsync run's exit ${pair%%:*} ends the container with ${pair#*:}" "${pair#*:}" "$rc"
done

# --- the Deployment ---------------------------------------------------------------------------
eq "Deployment: one replica" 1 "$(q "$dep" .spec.replicas)"
eq "Deployment: Recreate (never two daemons of a tenant in a rollout)" Recreate "$(q "$dep" .spec.strategy.type)"
daemon=$(q "$dep" '.spec.template.spec.containers[] | select(.name == "keapsync")')
eq "Deployment: keapsync daemon" "daemon" "$(q "$daemon" '.args[0]')"
for p in livenessProbe readinessProbe; do
    eq "Deployment: $p gets the daemon's /healthz" '/healthz' "$(q "$daemon" ".$p.httpGet.path")"
    eq "Deployment: $p on the metrics port" metrics "$(q "$daemon" ".$p.httpGet.port")"
done
eq "Deployment: the metrics port is named metrics" metrics "$(q "$daemon" '.ports[0].name')"
eq "ConfigMap env: the daemon listens where the kubelet reaches it" 0.0.0.0 "$(q "$(doc configmap-env.yaml ConfigMap)" .data.KEAPSYNC_METRICS_ADDR)"
check_ld=$(q "$daemon" '.livenessProbe.initialDelaySeconds > .readinessProbe.initialDelaySeconds')
eq "Deployment: liveness waits longer than readiness" true "$check_ld"
eq "Deployment: the metrics port is declared" "$(q "$daemon" '.args[2]')" "$(q "$daemon" '.ports[0].containerPort')"
eq "Deployment: the selector matches the pod's labels" true \
    "$(q "$dep" '(.spec.selector.matchLabels | to_entries) - (.spec.template.metadata.labels | to_entries) == []')"
check_sh() { [ -x "$KEAPSYNC_SRC/deploy/container/keapsync-health" ]; }
check_sh && ok "keapsync-health is in the image's sources" || bad "deploy/container/keapsync-health is missing"

# --- pods: secrets, security, references --------------------------------------------------------
uid=$(sed -n 's/^USER \([0-9]*\):.*/\1/p' "$KEAPSYNC_SRC/deploy/container/Dockerfile")
version=$("$KEAPSYNC_BUILD/keapsync" --version | awk '{print $2}')
names="$(cd "$tmp" && jq -r '.[] | "\(.kind)/\(.metadata.name)"' ./*.json | sort | tr '\n' ' ')"
for w in cron dep; do
    obj=${!w}
    pod=$(q "$obj" 'if .kind == "CronJob" then .spec.jobTemplate.spec.template.spec else .spec.template.spec end')
    kind=$(q "$obj" .kind)
    eq "$kind: runAsNonRoot" true "$(q "$pod" .securityContext.runAsNonRoot)"
    eq "$kind: the image's uid" "$uid" "$(q "$pod" .securityContext.runAsUser)"
    eq "$kind: no service account token" false "$(q "$pod" .automountServiceAccountToken)"
    eq "$kind: seccomp RuntimeDefault" RuntimeDefault "$(q "$pod" .securityContext.seccompProfile.type)"
    n=$(q "$pod" '[.initContainers[]?, .containers[]] | length')
    eq "$kind: every container: no privilege escalation, read-only root, no capability" "$n" \
        "$(q "$pod" '[.initContainers[]?, .containers[] | select(.securityContext.allowPrivilegeEscalation == false and .securityContext.readOnlyRootFilesystem == true and .securityContext.capabilities.drop == ["ALL"])] | length')"
    eq "$kind: every container runs the image of this version" "$n" \
        "$(q "$pod" --arg v "keapsync:$version" '[.initContainers[]?, .containers[] | select(.image == $v)] | length')"
    eq "$kind: DATABASE_URL and KEAP_API_KEY come from the Secret, in every container" "$((2 * n))" \
        "$(q "$pod" '[.initContainers[]?, .containers[] | .env[] | select((.name == "DATABASE_URL" or .name == "KEAP_API_KEY") and .valueFrom.secretKeyRef != null and .value == null)] | length')"
    eq "$kind: no secret as a literal value" "" \
        "$(q "$pod" '[.initContainers[]?, .containers[] | .env[]? | select(.value != null) | select(.name | test("KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL"))] | map(.name) | join(" ")')"
    for ref in $(q "$pod" '[.. | objects | (.secretKeyRef?.name // empty | "Secret/" + .), (.configMapRef?.name // empty | "ConfigMap/" + .)] + [.volumes[]? | (.configMap?.name // empty | "ConfigMap/" + .), (.secret?.secretName // empty | "Secret/" + .)] | unique | .[]'); do
        case " $names" in *" $ref "*) ok "$kind: $ref is defined in deploy/k8s" ;; *) bad "$kind: $ref is not defined in deploy/k8s ($names)" ;; esac
    done
    eq "$kind: the jobs mount is KEAPSYNC_JOBS" "$(q "$pod" '.containers[0].env[] | select(.name == "KEAPSYNC_JOBS") | .value')" \
        "$(q "$pod" '.containers[0].volumeMounts[] | select(.name == "jobs") | .mountPath')"
done
for k in keap-api-key database-url; do
    v=$(q "$sec" --arg k "$k" '.stringData[$k] // empty')
    case "$v" in *REPLACE*) ok "Secret: $k is a placeholder" ;; *) bad "Secret: $k is not a placeholder: the template must hold no real secret" ;; esac
done
eq "ConfigMap env: the tenant's schema" "keap_acme" "$(q "$env_cm" .data.KEAPSYNC_SCHEMA)"
eq "ConfigMap env: no secret" "" "$(q "$env_cm" '.data | keys | map(select(test("KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL"))) | join(" ")')"

# --- the jobs ConfigMap against jobs/ ---------------------------------------------------------
eq "ConfigMap jobs: one entry per job file" "$(cd "$KEAPSYNC_SRC/jobs" && ls ./*.json | sed 's#./##' | tr '\n' ' ')" \
    "$(q "$jobs_cm" '.data | keys | join(" ")') "
differ=0
for f in "$KEAPSYNC_SRC"/jobs/*.json; do
    [ "$(jq -S . "$f")" = "$(q "$jobs_cm" --arg k "$(basename "$f")" '.data[$k]' | jq -S .)" ] || {
        differ=$((differ + 1))
        echo "[k8s_manifests] $(basename "$f") differs (run deploy/k8s/gen-jobs-configmap.sh)" >&2
    }
done
eq "ConfigMap jobs: every entry equals its job file" 0 "$differ"
# A ConfigMap volume: the files are symlinks into a hidden ..data directory.
vol="$tmp/vol"
mkdir -p "$vol/..2026_01_01_00_00_00.000000000"
ln -s "..2026_01_01_00_00_00.000000000" "$vol/..data"
for k in $(q "$jobs_cm" '.data | keys[]'); do
    q "$jobs_cm" --arg k "$k" '.data[$k]' >"$vol/..2026_01_01_00_00_00.000000000/$k"
    ln -s "..data/$k" "$vol/$k"
done
rc=0
KEAPSYNC_JOBS=$vol KEAP_BASE_URL=http://127.0.0.1:9/crm/rest "$KEAPSYNC_BUILD/keapsync" check >"$tmp/check.out" 2>&1 || rc=$?
eq "keapsync check accepts the jobs as the ConfigMap volume lays them out" 0 "$rc"
eq "  and finds every job" "$(ls "$KEAPSYNC_SRC"/jobs/*.json | wc -l | tr -d ' ') jobs valid" \
    "$(sed -n 's/^check: \(.*\)$/\1/p' "$tmp/check.out")"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
