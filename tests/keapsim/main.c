/*
 * main.c: keapsim's command line. Parses the flags (README.md beside this file lists them),
 * builds the tenant, starts the HTTP daemon on 127.0.0.1, prints
 * "keapsim listening on 127.0.0.1:<port>" on stdout, and runs until SIGINT or SIGTERM.
 * With --mutate-rate a background thread changes records while clients read.
 */
#include "keapsim.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: keapsim --port N [--port-file PATH] [--api-key KEY]... [--api-key-file PATH]\n"
    "               [--seed S] [--size CONTACTS] [--limits 10/s,240/min,30000/day]\n"
    "               [--tenant-limits 10000/min] [--no-limits] [--latency MS[:JITTER]]\n"
    "               [--arrival-jitter MS]\n"
    "               [--mutate-rate N] [--token-ttl S] [--access-ttl S] [--revoke-delay MS]\n"
    "               [--retry-after on|off|0] [--fault kind[=P]:rate[:endpoint]]...\n"
    "               [--v1-count total|page]\n"
    "               [--client-id ID] [--client-secret SECRET] [--quiet]\n"
    "               [--tls-cert CERT.pem --tls-key KEY.pem]\n";

static atomic_int stopping; /* set by main, read by the mutator thread */

static int parse_i64_arg(const char *flag, const char *v, int64_t lo, int64_t *out)
{
    int64_t n;

    if (v == NULL || base_parse_int64(v, &n) < 0 || n < lo) {
        base_log_error("invalid value for %s", flag);
        return BASE_ECONFIG;
    }
    *out = n;
    return 0;
}

static int add_key(struct sim_config *cfg, const char *key)
{
    if (key == NULL || *key == '\0' || strlen(key) > 512) {
        base_log_error("invalid API key (empty or longer than 512 bytes)");
        return BASE_ECONFIG;
    }
    if (cfg->nkeys >= SIM_MAX_KEYS) {
        base_log_error("too many API keys (at most %d)", SIM_MAX_KEYS);
        return BASE_ECONFIG;
    }
    cfg->keys[cfg->nkeys] = strdup(key);
    if (cfg->keys[cfg->nkeys] == NULL)
        return BASE_ENOMEM;
    cfg->nkeys++;
    return 0;
}

/* The whole of a PEM file, for --tls-cert and --tls-key (at most 1 MiB). */
static int read_pem(const char *flag, const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    struct base_buf b;
    char chunk[4096];
    size_t n;
    int rc = 0;

    if (f == NULL) {
        base_log_error("could not open %s file \"%s\": %s", flag, path, strerror(errno));
        return BASE_ECONFIG;
    }
    base_buf_init(&b, 1024 * 1024);
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = base_buf_append(&b, chunk, n);
    if (rc == 0 && ferror(f))
        rc = BASE_EIO;
    fclose(f);
    if (rc == 0 && (b.data == NULL || strstr(b.data, "-----BEGIN") == NULL))
        rc = BASE_ECONFIG;
    if (rc < 0) {
        base_log_error("could not read %s file \"%s\" as PEM", flag, path);
        base_buf_free(&b);
        return BASE_ECONFIG;
    }
    free(*out);
    *out = b.data;
    return 0;
}

/* Reads keys, one per line, from path (blank lines and '#' comments skipped). */
static int add_key_file(struct sim_config *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[600];
    int rc = 0;

    if (f == NULL) {
        base_log_error("could not open key file \"%s\": %s", path, strerror(errno));
        return BASE_ECONFIG;
    }
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        size_t len = strcspn(line, "\r\n");

        line[len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        rc = add_key(cfg, line);
    }
    fclose(f);
    return rc;
}

static int parse_latency(const char *v, struct sim_config *cfg)
{
    char buf[64], *colon;

    if (v == NULL || strlen(v) >= sizeof(buf))
        return BASE_ECONFIG;
    memcpy(buf, v, strlen(v) + 1);
    colon = strchr(buf, ':');
    if (colon != NULL)
        *colon++ = '\0';
    if (parse_i64_arg("--latency", buf, 0, &cfg->latency_ms) < 0)
        return BASE_ECONFIG;
    if (colon != NULL && parse_i64_arg("--latency", colon, 0, &cfg->jitter_ms) < 0)
        return BASE_ECONFIG;
    return 0;
}

static int parse_args(int argc, char **argv, struct sim_config *cfg, struct sim_fault *faults,
                      size_t *nfaults, bool *quiet)
{
    int i;
    int64_t n;
    bool tenant_set = false;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(a, "--no-limits") == 0) {
            memset(&cfg->lim, 0, sizeof(cfg->lim));
            tenant_set = true;
            continue;
        } else if (strcmp(a, "--quiet") == 0) {
            *quiet = true;
            continue;
        }
        if (v == NULL) {
            base_log_error("%s needs a value (or is unknown)", a);
            return BASE_ECONFIG;
        }
        i++;
        if (strcmp(a, "--port") == 0) {
            rc = parse_i64_arg(a, v, 0, &n);
            if (rc == 0 && n > 65535)
                rc = BASE_ECONFIG;
            cfg->port = (int)n;
        } else if (strcmp(a, "--port-file") == 0) {
            cfg->port_file = v;
        } else if (strcmp(a, "--api-key") == 0) {
            rc = add_key(cfg, v);
        } else if (strcmp(a, "--api-key-file") == 0) {
            rc = add_key_file(cfg, v);
        } else if (strcmp(a, "--seed") == 0) {
            rc = parse_i64_arg(a, v, 0, &n);
            cfg->seed = (uint64_t)n;
        } else if (strcmp(a, "--size") == 0) {
            rc = parse_i64_arg(a, v, 0, &n);
            if (rc == 0 && n > 5000000)
                rc = BASE_ECONFIG;
            cfg->size = (size_t)n;
        } else if (strcmp(a, "--limits") == 0) {
            rc = sim_limits_parse(v, &cfg->lim);
            if (rc == 0 && !tenant_set && cfg->lim.per_s == 0 && cfg->lim.per_min == 0 &&
                cfg->lim.per_day == 0)
                cfg->lim.tenant_per_min = 0; /* "0/s,0/min,0/day" means no limits at all */
        } else if (strcmp(a, "--tenant-limits") == 0) {
            struct sim_limits t = {0, 0, 0, 0};

            rc = sim_limits_parse(v, &t);
            cfg->lim.tenant_per_min = t.per_min;
            tenant_set = true;
        } else if (strcmp(a, "--latency") == 0) {
            rc = parse_latency(v, cfg);
        } else if (strcmp(a, "--arrival-jitter") == 0) {
            rc = parse_i64_arg(a, v, 0, &cfg->arrival_jitter_ms);
        } else if (strcmp(a, "--mutate-rate") == 0) {
            rc = base_parse_double(v, &cfg->mutate_rate);
            if (rc == 0 && (cfg->mutate_rate < 0 || cfg->mutate_rate > 100000))
                rc = BASE_ECONFIG;
        } else if (strcmp(a, "--token-ttl") == 0) {
            rc = parse_i64_arg(a, v, 0, &cfg->token_ttl_s);
        } else if (strcmp(a, "--access-ttl") == 0) {
            rc = parse_i64_arg(a, v, 1, &cfg->access_ttl_s);
        } else if (strcmp(a, "--revoke-delay") == 0) {
            rc = parse_i64_arg(a, v, 0, &cfg->revoke_delay_ms);
        } else if (strcmp(a, "--v1-count") == 0) {
            if (strcmp(v, "page") == 0 || strcmp(v, "total") == 0)
                cfg->count_page = strcmp(v, "page") == 0;
            else
                rc = BASE_ECONFIG;
        } else if (strcmp(a, "--retry-after") == 0) {
            if (strcmp(v, "on") == 0)
                cfg->retry_after = 1;
            else if (strcmp(v, "off") == 0)
                cfg->retry_after = -1;
            else if (strcmp(v, "0") == 0)
                cfg->retry_after = 0;
            else
                rc = BASE_ECONFIG;
        } else if (strcmp(a, "--fault") == 0) {
            if (*nfaults >= SIM_MAX_FAULTS || sim_fault_parse(v, &faults[*nfaults]) < 0)
                rc = BASE_ECONFIG;
            else
                (*nfaults)++;
        } else if (strcmp(a, "--tls-cert") == 0) {
            rc = read_pem(a, v, &cfg->tls_cert);
        } else if (strcmp(a, "--tls-key") == 0) {
            rc = read_pem(a, v, &cfg->tls_key);
        } else if (strcmp(a, "--client-id") == 0) {
            cfg->client_id = v;
        } else if (strcmp(a, "--client-secret") == 0) {
            cfg->client_secret = v;
        } else {
            base_log_error("unknown option \"%s\"", a);
            fputs(usage, stderr);
            return BASE_ECONFIG;
        }
        if (rc < 0) {
            base_log_error("invalid value for %s", a);
            return BASE_ECONFIG;
        }
    }
    return 0;
}

/* Changes records at cfg.mutate_rate per second: 20 % creates, 70 % updates, 10 % deletes. */
static void *mutator_main(void *arg)
{
    struct sim *s = arg;
    double due = 0;
    uint64_t rng = s->cfg.seed ^ 0x6D757461746F72ULL;

    while (!atomic_load(&stopping)) {
        struct timespec ts = {0, 100 * 1000000L};
        size_t cr = 0, up = 0, de = 0;

        nanosleep(&ts, NULL);
        due += s->cfg.mutate_rate / 10.0;
        while (due >= 1.0) {
            double u = sim_rng_unit(&rng);

            if (u < 0.2)
                cr++;
            else if (u < 0.9)
                up++;
            else
                de++;
            due -= 1.0;
        }
        if (cr + up + de > 0 && sim_data_mutate(&s->data, sim_wall_ms(s), cr, up, de) < 0)
            base_log_warning("could not mutate the data set");
    }
    return NULL;
}

static int write_port_file(const char *path, int port)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        base_log_error("could not write port file \"%s\": %s", path, strerror(errno));
        return BASE_EIO;
    }
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return BASE_EIO;
    return 0;
}

int main(int argc, char **argv)
{
    static struct sim s; /* big (windows, tokens): not on the stack */
    struct sim_fault faults[SIM_MAX_FAULTS];
    size_t nfaults = 0, i;
    void *daemon = NULL;
    pthread_t mutator;
    bool mutator_started = false, quiet = false;
    sigset_t set;
    int port = 0, sig, rc = 1;
    int64_t lists_ms;

    base_log_set_prog("keapsim");
    s.cfg.seed = 1;
    s.cfg.size = 1000;
    s.cfg.lim = (struct sim_limits){10, 240, 30000, 10000};
    s.cfg.token_ttl_s = 300;
    s.cfg.access_ttl_s = 86400;
    s.cfg.retry_after = -1;
    s.cfg.client_id = "keapsim-client";
    s.cfg.client_secret = "keapsim-secret";
    if (pthread_mutex_init(&s.mu, NULL) != 0)
        return 1;
    if (parse_args(argc, argv, &s.cfg, faults, &nfaults, &quiet) < 0) {
        rc = 2;
        goto out;
    }
    if ((s.cfg.tls_cert == NULL) != (s.cfg.tls_key == NULL)) {
        base_log_error("--tls-cert and --tls-key go together");
        rc = 2;
        goto out;
    }
    if (quiet)
        base_log_set_level(BASE_LOG_WARNING);
    if (s.cfg.nkeys == 0) {
        if (add_key(&s.cfg, SIM_DEFAULT_KEY) < 0)
            goto out;
        base_log_warning("no --api-key given: accepting the key \"%s\"", SIM_DEFAULT_KEY);
    }
    s.nkeys = s.cfg.nkeys;
    for (i = 0; i < s.nkeys; i++) {
        s.keys[i].secret = s.cfg.keys[i];
        snprintf(s.keys[i].id, sizeof(s.keys[i].id), "key%zu", i + 1);
    }
    snprintf(s.keys[SIM_MAX_KEYS].id, sizeof(s.keys[SIM_MAX_KEYS].id), "oauth");
    s.keys[SIM_MAX_KEYS].secret = NULL;
    s.fault_rng = s.cfg.seed ^ 0xFA017ULL;
    s.token_rng = (uint64_t)sim_mono_ms() ^ ((uint64_t)sim_wall_ms_locked(&s) << 16);
    for (i = 0; i < nfaults; i++)
        s.faults[s.nfaults++] = faults[i];
    if (sim_limits_init(&s) < 0) {
        base_log_error("could not allocate the rate windows");
        goto out;
    }
    if (sim_data_init(&s.data, s.cfg.seed, s.cfg.size) < 0) {
        base_log_error("could not build the data set");
        goto out_limits;
    }
    lists_ms = sim_mono_ms();
    if (sim_lists_init(&s) < 0) {
        base_log_error("could not compile the list schemas");
        goto out_data;
    }
    lists_ms = sim_mono_ms() - lists_ms;

    /* Signals are taken by sigwait below; the daemon's threads inherit the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (sim_http_start(&s, s.cfg.port, &port, &daemon) < 0) {
        base_log_error("could not listen on 127.0.0.1:%d", s.cfg.port);
        goto out_data;
    }
    if (s.cfg.port_file != NULL && write_port_file(s.cfg.port_file, port) < 0)
        goto out_http;
    if (s.cfg.mutate_rate > 0) {
        if (pthread_create(&mutator, NULL, mutator_main, &s) != 0) {
            base_log_error("could not start the mutator thread");
            goto out_http;
        }
        mutator_started = true;
    }
    printf("keapsim listening on 127.0.0.1:%d\n", port);
    fflush(stdout);
    base_log_info("%zu contacts (seed %llu), limits %lld/s,%lld/min,%lld/day, tenant %lld/min",
                  s.data.n, (unsigned long long)s.cfg.seed, (long long)s.cfg.lim.per_s,
                  (long long)s.cfg.lim.per_min, (long long)s.cfg.lim.per_day,
                  (long long)s.cfg.lim.tenant_per_min);
    base_log_info("other lists ready in %lld ms (generated on demand)", (long long)lists_ms);

    while (sigwait(&set, &sig) != 0)
        ;
    base_log_info("signal %d: stopping", sig);
    rc = 0;
    atomic_store(&stopping, 1);
    if (mutator_started)
        pthread_join(mutator, NULL);
out_http:
    sim_http_stop(daemon);
out_data:
    sim_lists_free(&s);
    sim_data_free(&s.data);
out_limits:
    sim_limits_free(&s);
out:
    for (i = 0; i < s.cfg.nkeys; i++)
        free(s.cfg.keys[i]);
    free(s.cfg.tls_cert);
    free(s.cfg.tls_key);
    pthread_mutex_destroy(&s.mu);
    return rc;
}
