/*
 * pq.c: the libpq helpers every file of the store shares (store_int.h): running a statement
 * and turning a failure into a report ("<what>: <the server's message>", with its hint),
 * COMMIT and ROLLBACK, and the UTC day a ledger row is keyed by. It sits under the store's
 * other files: store.c (connection, migrations, checkpoints, settings, runs), sink.c,
 * ledger.c and lease.c call it, and it calls none of them.
 */
#include "store_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Copies the first line of a libpq message into buf (libpq's texts end in "\n" and may go
 * on with indented detail lines). */
void store_first_line(const char *msg, char *buf, size_t n)
{
    size_t len;

    if (msg == NULL || msg[0] == '\0')
        msg = "unknown error";
    len = strcspn(msg, "\r\n");
    if (len >= n)
        len = n - 1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
}

int store_pg_error(struct store *s, const PGresult *res, struct base_err *err, const char *fmt, ...)
{
    char what[256];
    char line[320];
    const char *primary = NULL, *hint = NULL, *context = NULL;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (s != NULL)
        s->last_state[0] = '\0';
    if (res != NULL) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        if (s != NULL && state != NULL && strlen(state) == 5)
            memcpy(s->last_state, state, 6);
        primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
        context = PQresultErrorField(res, PG_DIAG_CONTEXT);
    }
    if (primary != NULL) {
        store_first_line(primary, line, sizeof(line));
    } else {
        store_first_line(s != NULL && s->conn != NULL ? PQerrorMessage(s->conn) : NULL, line,
                         sizeof(line));
    }
    /* COPY's context line names the line and column of a bad row: worth keeping. It is the
     * last of the context's lines ("JSON data, line 1: ..." may come first). */
    if (context != NULL) {
        const char *c = context;

        while (strncmp(c, "COPY ", 5) != 0 && (c = strchr(c, '\n')) != NULL)
            c++;
        context = c;
    }
    if (context != NULL) {
        char ctx[160];

        store_first_line(context, ctx, sizeof(ctx));
        base_err_set(err, BASE_EDB, "%s: %s (%s)", what, line, ctx);
    } else {
        base_err_set(err, BASE_EDB, "%s: %s", what, line);
    }
    if (hint != NULL)
        base_err_hint(err, "%s", hint);
    return BASE_EDB;
}

int store_query(struct store *s, PGresult **out, ExecStatusType want, const char *sql, int nparams,
                const char *const *params, struct base_err *err, const char *fmt, ...)
{
    PGresult *res;
    char what[256];
    va_list ap;

    if (nparams > 0)
        res = PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    else
        res = PQexec(s->conn, sql);
    if (res != NULL && PQresultStatus(res) == want) {
        if (out != NULL)
            *out = res;
        else
            PQclear(res);
        return BASE_OK;
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    store_pg_error(s, res, err, "%s", what);
    PQclear(res);
    return BASE_EDB;
}

int store_commit(struct store *s, struct base_err *err, const char *what)
{
    PGresult *res = PQexec(s->conn, "COMMIT");
    int rc = BASE_OK;

    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = store_pg_error(s, res, err, "%s", what);
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        rc = base_err_set(err, BASE_EDB, "%s: the transaction was rolled back", what);
    PQclear(res);
    return rc;
}

void store_rollback(struct store *s)
{
    PGresult *res;

    if (s->conn == NULL || PQtransactionStatus(s->conn) == PQTRANS_IDLE)
        return;
    res = PQexec(s->conn, "ROLLBACK");
    PQclear(res);
}

int store_day(int64_t day_wall, char *buf, size_t n, struct base_err *err)
{
    if (base_time_format_day(day_wall, buf, n) < 0)
        return base_err_set(err, BASE_EINVAL, "could not format the UTC day of %" PRId64, day_wall);
    return BASE_OK;
}
