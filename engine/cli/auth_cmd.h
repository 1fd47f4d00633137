/*
 * auth_cmd.h: OAuth2 on the command line (cli-local): `keapsync auth`, and the credential of
 * the commands that call Keap: an API key (KEAP_API_KEY, KEAP_API_KEY_FILE) or, when neither
 * is set and KEAP_CLIENT_ID is, the access token stored in keapsync.oauth_tokens.
 */
#ifndef KEAPSYNC_CLI_AUTH_CMD_H
#define KEAPSYNC_CLI_AUTH_CMD_H

#include "base.h"
#include "http.h" /* before keap.h: uv.h -> pthread.h -> <sched.h> finds engine/sched/sched.h */
#include "keap.h"
#include "sched.h"
#include "store.h"

#include <stdbool.h>

/* An OAuth2 client configured in the environment, and what a run needs of it. */
struct cli_oauth {
    struct keap_oauth_client client;
    struct store_token_key key; /* KEAPSYNC_TOKEN_KEY_FILE, when have_key */
    bool have_key;
    struct sched_oauth so; /* for sched_options.oauth, filled by cli_credential_db */
};

/*
 * The environment half, before any database: an API key into cred (*out NULL), or the OAuth2
 * client and token key into a fresh *out (cli_oauth_free). Bad configuration: BASE_ECONFIG.
 */
int cli_credential_env(struct keap_credential *cred, struct cli_oauth **out, struct base_err *err);
/*
 * The database half for OAuth2 (o not NULL; nothing for an API key): the stored access token,
 * refreshed first when due (sched_oauth_token), into cred->access_token, and o->so filled in.
 */
int cli_credential_db(struct store *s, struct keap_credential *cred, struct cli_oauth *o,
                      struct base_err *err);
void cli_oauth_free(struct cli_oauth *o); /* wipes; accepts NULL */

/* Both halves at once (s NULL: connects to DATABASE_URL for OAuth2, then closes). */
int cli_credential(struct store *s, struct keap_credential *cred, struct base_err *err);

/*
 * The app's and the tenant's limits beside KEAPSYNC_LIMITS: KEAPSYNC_APP_LIMITS (the OAuth2
 * client id, across tenants; default 1500/min,150000/day) and KEAPSYNC_TENANT_CEILING (every
 * credential of the tenant; default 10000/min,250000/day). Their minutes cap opt->limits'
 * minute; their days go to the ledger (o->so.app_per_day, opt->ceiling_per_day).
 */
int cli_app_limits(struct sched_options *opt, struct cli_oauth *o, struct base_err *err);

/* `keapsync auth [--code CODE --redirect-uri URI | --refresh-token-file F]`: an exit code. */
int cli_cmd_auth(int argc, char **argv);

#endif
