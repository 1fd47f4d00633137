/*
 * faults.c: injected faults, configured by rate and endpoint.
 *
 * A fault spec is "kind[=param]:rate[:endpoint]": kind one of the names below, rate the
 * probability (0..1) that a matching API request gets it, endpoint a path prefix such as
 * "/v1/contacts" (with or without "/crm/rest"; absent: every API path). param is the delay in
 * ms for latency (default 2000) and drip (pause between 64-byte chunks, default 50), the
 * status for 5xx (default 500), the nesting depth for deep (default 10000), the MiB of the
 * string for huge (default 100). Faults apply only to requests that passed auth and limits;
 * when several match, the first one configured that fires wins.
 */
#include "keapsim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const fault_names[SIM_FAULT_KIND_MAX] = {
    [SIM_FAULT_LATENCY] = "latency",
    [SIM_FAULT_5XX] = "5xx",
    [SIM_FAULT_RESET] = "reset",
    [SIM_FAULT_TRUNCATE] = "truncate",
    [SIM_FAULT_MALFORMED] = "malformed",
    [SIM_FAULT_HTML] = "html",
    [SIM_FAULT_DRIP] = "drip",
    [SIM_FAULT_BARE429] = "429-bare",
    [SIM_FAULT_NOHEADERS] = "no-headers",
    [SIM_FAULT_BLANKHEADERS] = "blank-headers",
    [SIM_FAULT_NUL] = "nul",
    [SIM_FAULT_UTF8] = "utf8",
    [SIM_FAULT_LONGSTR] = "long-string",
    [SIM_FAULT_DEEP] = "deep",
    [SIM_FAULT_HUGE] = "huge",
    [SIM_FAULT_BLANK429] = "429-blank",
};

const char *sim_fault_name(enum sim_fault_kind k)
{
    return k < SIM_FAULT_KIND_MAX ? fault_names[k] : "none";
}

int sim_fault_parse(const char *spec, struct sim_fault *f)
{
    char buf[160], *kind, *rate, *endpoint, *eq;
    struct sim_fault out;
    size_t i;

    if (spec == NULL || strlen(spec) >= sizeof(buf))
        return BASE_EINVAL;
    memcpy(buf, spec, strlen(spec) + 1);
    memset(&out, 0, sizeof(out));
    kind = buf;
    rate = strchr(kind, ':');
    if (rate == NULL)
        return BASE_EINVAL;
    *rate++ = '\0';
    endpoint = strchr(rate, ':');
    if (endpoint != NULL)
        *endpoint++ = '\0';
    eq = strchr(kind, '=');
    if (eq != NULL) {
        *eq++ = '\0';
        if (base_parse_int64(eq, &out.param) < 0 || out.param < 0)
            return BASE_EINVAL;
    }
    out.kind = SIM_FAULT_KIND_MAX;
    for (i = 0; i < SIM_FAULT_KIND_MAX; i++)
        if (strcmp(kind, fault_names[i]) == 0)
            out.kind = (enum sim_fault_kind)i;
    if (out.kind == SIM_FAULT_KIND_MAX)
        return BASE_EINVAL;
    if (base_parse_double(rate, &out.rate) < 0 || out.rate < 0 || out.rate > 1)
        return BASE_EINVAL;
    if (endpoint != NULL) {
        if (strncmp(endpoint, "/crm/rest", 9) == 0)
            endpoint += 9;
        if (strlen(endpoint) >= sizeof(out.endpoint))
            return BASE_EINVAL;
        memcpy(out.endpoint, endpoint, strlen(endpoint) + 1);
    }
    *f = out;
    return 0;
}

int sim_faults_add(struct sim *s, const struct sim_fault *f)
{
    int rc = 0;

    pthread_mutex_lock(&s->mu);
    if (s->nfaults >= SIM_MAX_FAULTS)
        rc = BASE_ETOOBIG;
    else
        s->faults[s->nfaults++] = *f;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int sim_faults_pick(struct sim *s, const char *path, struct sim_fault *out)
{
    size_t i;

    out->kind = SIM_FAULT_KIND_MAX;
    pthread_mutex_lock(&s->mu);
    for (i = 0; i < s->nfaults; i++) {
        const struct sim_fault *f = &s->faults[i];

        if (f->endpoint[0] != '\0' && strncmp(path, f->endpoint, strlen(f->endpoint)) != 0)
            continue;
        if (sim_rng_unit(&s->fault_rng) < f->rate) {
            *out = *f;
            s->st.faults++;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}
