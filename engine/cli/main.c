/*
 * main.c: the keapsync command line. Reads the environment (DESIGN.md's table), validates
 * everything before touching the database, runs one command and maps its outcome to the
 * documented exit codes:
 *   0  all selected jobs complete
 *   75 stopped at the daily quota with progress saved (run again after 00:00 UTC)
 *   77 authentication refused
 *   130 stopped by SIGINT or SIGTERM with progress saved (not a failure)
 *   2  bad usage or bad configuration (nothing written)
 *   1  any other failure (progress up to the last commit kept)
 * Errors are one line: "keapsync: error: <what is wrong> (hint: <how to fix it>)".
 *
 * This file holds the usage text, the process's own setup (log level, libcurl) and the
 * dispatch to each command. Each command lives in a file of its own, <command>_cmd.c; what
 * they share (cli_int.h) is in common.c.
 */
#include "cli_int.h"
#include "auth_cmd.h"
#include "plan_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

static const char usage[] =
    "keapsync " KEAPSYNC_VERSION ": replicate a Keap CRM account into PostgreSQL\n"
    "\n"
    "Usage: keapsync [-v|-q] COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  migrate [--drop-columns]\n"
    "                        create or upgrade keapsync's schema in DATABASE_URL and bring\n"
    "                        each job's table in line with its job file\n"
    "  check                 validate the job files in KEAPSYNC_JOBS (no database needed)\n"
    "  run [--only A,B] [--drop-columns]\n"
    "                        sync the jobs (all, or the named ones) into Postgres\n"
    "  --drop-columns        drop the columns a job no longer has (default: keep them)\n"
    "  status [--json]       each job's last run, watermark, checkpoint and backfills, and\n"
    "                        today's quota; exits 1 if a job's last run failed\n"
    "  backfill NAME --from DATE [--to DATE]\n"
    "                        record a backfill of incremental job NAME's history over\n"
    "                        [--from, --to) (YYYY-MM-DD or ISO-8601, UTC; --to defaults to\n"
    "                        now); every later run continues it until it is done\n"
    "  plan [--json] [--only A,B]\n"
    "                        estimate each job's records, requests and finish date against\n"
    "                        the daily quota (see keapsync plan --help)\n"
    "  auth --code CODE --redirect-uri URI | auth --refresh-token-file FILE\n"
    "                        store an OAuth2 client's first token pair: from an authorization\n"
    "                        code (short-lived, single-use) or an existing refresh token\n"
    "  daemon                run the jobs on their schedules (cron, UTC) until stopped;\n"
    "                        sleeps across the UTC day when the quota is spent (see\n"
    "                        keapsync daemon --help)\n"
    "  report --out FILE.html [--runs N]\n"
    "                        one offline HTML file of charts: request rates against the\n"
    "                        ceilings, quota per day, records per job, backfill progress\n"
    "  --help, --version\n"
    "\n"
    "Each command has its own help: keapsync COMMAND --help.\n"
    "\n"
    "Environment:\n"
    "  DATABASE_URL          libpq connection string or URI (default: libpq's PG* variables)\n"
    "  KEAP_API_KEY          Personal Access Token or Service Account Key\n"
    "  KEAP_API_KEY_FILE     or a file holding it (mode 0600)\n"
    "  KEAP_CLIENT_ID        OAuth2 client id, used when no API key is set (keapsync auth)\n"
    "  KEAP_CLIENT_SECRET_FILE  a file holding its secret (mode 0600), or KEAP_CLIENT_SECRET\n"
    "  KEAP_TOKEN_URL        OAuth2 token endpoint (default " KEAP_DEFAULT_TOKEN_URL ")\n"
    "  KEAPSYNC_TOKEN_KEY_FILE  32-byte key: OAuth2 tokens encrypted at rest\n"
    "  KEAPSYNC_APP_LIMITS   the OAuth2 client's limits (default 1500/min,150000/day)\n"
    "  KEAPSYNC_TENANT_CEILING  every credential of the tenant (default 10000/min,250000/day)\n"
    "  KEAP_BASE_URL         API root (default " KEAP_DEFAULT_BASE_URL ")\n"
    "  KEAPSYNC_CA_FILE      PEM bundle of the CAs to trust (default: the system's)\n"
    "  KEAPSYNC_TLS_INSECURE 1: no TLS verification, for loopback test hosts only\n"
    "  KEAPSYNC_LIMITS       ceilings (default 10/s,240/min,30000/day)\n"
    "  KEAPSYNC_RESERVE      share of the daily quota left to other integrations (e.g. 10%)\n"
    "  KEAPSYNC_TENANT       ledger key for the daily quota (default: Keap's tenant id)\n"
    "  KEAPSYNC_JOBS         job definitions folder (default jobs)\n"
    "  KEAPSYNC_SCHEMA       schema of the jobs' tables, one per tenant (default keap)\n"
    "  KEAPSYNC_SCHEDULE     daemon: schedule of jobs without one (default \"0 * * * *\")\n"
    "  KEAPSYNC_STOP_TIMEOUT seconds pages in flight may land after SIGTERM (default 10)\n"
    "  KEAPSYNC_LEASE_TTL    seconds a job's lease lasts unless renewed (default 60)\n"
    "  KEAPSYNC_LOG_LEVEL    debug, info, warning or error (default info)\n"
    "  KEAPSYNC_LOG_FORMAT   auto (logfmt unless stderr is a terminal), logfmt or text\n"
    "\n"
    "Exit codes: 0 done; 75 daily quota spent, progress saved; 77 authentication refused;\n"
    "130 stopped by SIGINT or SIGTERM, progress saved; 2 bad usage or configuration;\n"
    "1 any other failure.\n";

static int set_log_level(struct base_err *err)
{
    const char *lvl = cli_env_or("KEAPSYNC_LOG_LEVEL", NULL);
    const char *fmt = cli_env_or("KEAPSYNC_LOG_FORMAT", "auto");

    if (strcmp(fmt, "auto") == 0)
        base_log_set_format(BASE_LOG_FORMAT_AUTO);
    else if (strcmp(fmt, "logfmt") == 0)
        base_log_set_format(BASE_LOG_FORMAT_LOGFMT);
    else if (strcmp(fmt, "text") == 0)
        base_log_set_format(BASE_LOG_FORMAT_TEXT);
    else {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_LOG_FORMAT \"%s\"", fmt);
        base_err_hint(err, "use auto (logfmt unless stderr is a terminal), logfmt or text");
        return BASE_ECONFIG;
    }

    if (lvl == NULL)
        return 0;
    if (strcmp(lvl, "debug") == 0)
        base_log_set_level(BASE_LOG_DEBUG);
    else if (strcmp(lvl, "info") == 0)
        base_log_set_level(BASE_LOG_INFO);
    else if (strcmp(lvl, "warning") == 0)
        base_log_set_level(BASE_LOG_WARNING);
    else if (strcmp(lvl, "error") == 0)
        base_log_set_level(BASE_LOG_ERROR);
    else {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_LOG_LEVEL \"%s\"", lvl);
        base_err_hint(err, "use debug, info, warning or error");
        return BASE_ECONFIG;
    }
    return 0;
}

/*
 * No core file and no ptrace by other processes of the user: a core would hold the API key,
 * OAuth tokens and the database password (curl's and libpq's copies of them included), and
 * nothing can scrub those. KEAPSYNC_CORE_DUMPS=1 allows them, for debugging a crash.
 */
static int set_dumpable(struct base_err *err)
{
    const char *v = cli_env_or("KEAPSYNC_CORE_DUMPS", "0");

    if (strcmp(v, "1") == 0)
        return 0;
    if (strcmp(v, "0") != 0) {
        base_err_set(err, BASE_ECONFIG, "invalid KEAPSYNC_CORE_DUMPS \"%.40s\"", v);
        base_err_hint(err, "use 0 (the default: no core files, they would hold secrets) or 1");
        return BASE_ECONFIG;
    }
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        base_log_warning("could not turn core dumps off (%s): a core file would hold secrets",
                         strerror(errno));
    return 0;
}

int main(int argc, char **argv)
{
    struct base_err err;
    int i = 1, rc;

    base_log_set_prog("keapsync");
    base_err_clear(&err);
    if (set_log_level(&err) < 0 || set_dumpable(&err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            puts("keapsync " KEAPSYNC_VERSION);
            return 0;
        } else if (strcmp(argv[i], "-v") == 0) {
            base_log_set_level(BASE_LOG_DEBUG);
        } else if (strcmp(argv[i], "-q") == 0) {
            base_log_set_level(BASE_LOG_WARNING);
        } else {
            return cli_fail_usage("unknown option \"%s\"", argv[i]);
        }
    }
    if (i >= argc) {
        fputs(usage, stderr);
        return CLI_EXIT_CONFIG;
    }
    if (cli_set_schema(&err) < 0)
        return cli_fail(CLI_EXIT_CONFIG, &err);
    if (http_global_init() < 0) {
        base_err_set(&err, BASE_EIO, "could not initialise libcurl");
        return cli_fail(EXIT_FAILURE, &err);
    }
    if (cli_configure_tls(&err) < 0) {
        http_global_cleanup();
        return cli_fail(CLI_EXIT_CONFIG, &err);
    }
    if (strcmp(argv[i], "migrate") == 0)
        rc = cli_cmd_migrate(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "check") == 0)
        rc = cli_cmd_check(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "run") == 0)
        rc = cli_cmd_run(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "status") == 0)
        rc = cli_cmd_status(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "backfill") == 0)
        rc = cli_cmd_backfill(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "plan") == 0)
        rc = cli_plan(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "auth") == 0)
        rc = cli_cmd_auth(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "report") == 0)
        rc = cli_cmd_report(argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "daemon") == 0)
        rc = cli_cmd_daemon(argc - i - 1, argv + i + 1);
    else
        rc = cli_fail_usage("unknown command \"%s\"", argv[i]);
    http_global_cleanup();
    return rc;
}
