/*
 * base.c: error reports, logging, clocks, bounded buffers and strict parsing.
 * See base.h for the vocabulary.
 */
#include "base.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *base_strerror(int code)
{
    switch (code) {
    case BASE_OK:
        return "success";
    case BASE_ENOMEM:
        return "out of memory";
    case BASE_EINVAL:
        return "invalid argument";
    case BASE_EIO:
        return "input/output error";
    case BASE_EAGAIN:
        return "try again";
    case BASE_ERANGE:
        return "out of range";
    case BASE_ENOTFOUND:
        return "not found";
    case BASE_EAUTH:
        return "authentication refused";
    case BASE_EQUOTA:
        return "daily quota spent";
    case BASE_ECONFIG:
        return "bad configuration";
    case BASE_EDB:
        return "database error";
    case BASE_EPROTO:
        return "protocol error";
    case BASE_ETOOBIG:
        return "too big";
    case BASE_ECANCELED:
        return "canceled";
    default:
        return "unknown error";
    }
}

void base_err_clear(struct base_err *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
    err->hint[0] = '\0';
}

int base_err_set(struct base_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->hint[0] = '\0';
    return code;
}

void base_err_hint(struct base_err *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(err->hint, sizeof(err->hint), fmt, ap);
    va_end(ap);
}

static enum base_log_level log_level = BASE_LOG_INFO;
static const char *log_prog = "keapsync";

void base_log_set_level(enum base_log_level level)
{
    log_level = level;
}

enum base_log_level base_log_get_level(void)
{
    return log_level;
}

void base_log_set_prog(const char *prog)
{
    log_prog = prog;
}

static enum base_log_format log_format = BASE_LOG_FORMAT_TEXT;
static int64_t log_run = 0;
static void (*log_hook)(void);

void base_log_set_hook(void (*before_line)(void))
{
    log_hook = before_line;
}

void base_log_set_format(enum base_log_format format)
{
    if (format == BASE_LOG_FORMAT_AUTO)
        format = isatty(STDERR_FILENO) ? BASE_LOG_FORMAT_TEXT : BASE_LOG_FORMAT_LOGFMT;
    log_format = format;
}

int base_log_is_logfmt(void)
{
    return log_format == BASE_LOG_FORMAT_LOGFMT;
}

void base_log_set_run(int64_t run_id)
{
    log_run = run_id;
}

void base_logfmt_value(char *buf, size_t n, const char *s)
{
    size_t at = strlen(buf);
    bool quote = s[0] == '\0';

    for (const char *p = s; *p != '\0' && !quote; p++)
        quote = *p == ' ' || *p == '=' || *p == '"' || (unsigned char)*p < 0x20;
    if (quote && at + 1 < n)
        buf[at++] = '"';
    for (const char *p = s; *p != '\0' && at + 7 < n; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '"' || c == '\\') {
            buf[at++] = '\\';
            buf[at++] = (char)c;
        } else if (c == '\n') {
            buf[at++] = '\\';
            buf[at++] = 'n';
        } else if (c == '\t') {
            buf[at++] = '\\';
            buf[at++] = 't';
        } else if (c < 0x20 || c == 0x7f) {
            at += (size_t)snprintf(buf + at, n - at, "\\u%04x", c);
        } else {
            buf[at++] = (char)c;
        }
    }
    if (quote && at + 1 < n)
        buf[at++] = '"';
    buf[at < n ? at : n - 1] = '\0';
}

/* The job a message names: it begins with job "NAME": (sched's messages do). */
static void message_job(const char *msg, char *job, size_t n)
{
    const char *end;

    snprintf(job, n, "-");
    if (strncmp(msg, "job \"", 5) != 0 || (end = strstr(msg + 5, "\": ")) == NULL)
        return;
    if ((size_t)(end - (msg + 5)) < n && end > msg + 5)
        snprintf(job, n, "%.*s", (int)(end - (msg + 5)), msg + 5);
}

void base_log(enum base_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    static const char *const lower[] = {"debug", "info", "warning", "error"};
    char line[4096], msg[2048], job[160], ts[32], run[24];
    va_list ap;
    int n;

    if (level < log_level || level > BASE_LOG_ERROR)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_format == BASE_LOG_FORMAT_LOGFMT) {
        base_time_format(base_clock_wall_ms(base_clock_system()), ts, sizeof(ts));
        message_job(msg, job, sizeof(job));
        if (log_run > 0)
            snprintf(run, sizeof(run), "%" PRId64, log_run);
        else
            snprintf(run, sizeof(run), "-");
        n = snprintf(line, sizeof(line), "time=%s level=%s run=%s job=", ts, lower[level], run);
        if (n < 0)
            return;
        base_logfmt_value(line, sizeof(line), job);
        strncat(line, " msg=", sizeof(line) - strlen(line) - 1);
        base_logfmt_value(line, sizeof(line), msg);
    } else {
        snprintf(line, sizeof(line), "%s: %s: %s", log_prog, names[level], msg);
    }
    if (log_hook != NULL)
        log_hook();
    /* One write per line, so lines of concurrent processes do not interleave. */
    fprintf(stderr, "%s\n", line);
}

static uint64_t system_mono_ms(void *ud)
{
    struct timespec ts;

    (void)ud;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t system_wall_ms(void *ud)
{
    struct timespec ts;

    (void)ud;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const struct base_clock *base_clock_system(void)
{
    static const struct base_clock sys = {system_mono_ms, system_wall_ms, NULL};
    return &sys;
}

uint64_t base_clock_mono_ms(const struct base_clock *c)
{
    return c->mono_ms(c->ud);
}

int64_t base_clock_wall_ms(const struct base_clock *c)
{
    return c->wall_ms(c->ud);
}

static uint64_t fake_mono_ms(void *ud)
{
    return ((struct base_fake_clock *)ud)->mono;
}

static int64_t fake_wall_ms(void *ud)
{
    return ((struct base_fake_clock *)ud)->wall;
}

void base_fake_clock_init(struct base_fake_clock *fc, uint64_t mono, int64_t wall)
{
    fc->clock.mono_ms = fake_mono_ms;
    fc->clock.wall_ms = fake_wall_ms;
    fc->clock.ud = fc;
    fc->mono = mono;
    fc->wall = wall;
}

void base_buf_init(struct base_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

int base_buf_reserve(struct base_buf *b, size_t extra)
{
    size_t need, ncap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return BASE_ETOOBIG;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return BASE_OK;
    ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    p = realloc(b->data, ncap);
    if (p == NULL)
        return BASE_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return BASE_OK;
}

int base_buf_append(struct base_buf *b, const void *p, size_t n)
{
    int rc = base_buf_reserve(b, n);

    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return BASE_OK;
}

int base_buf_puts(struct base_buf *b, const char *s)
{
    return base_buf_append(b, s, strlen(s));
}

int base_buf_printf(struct base_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return BASE_EINVAL;
    rc = base_buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return BASE_OK;
}

void base_buf_reset(struct base_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void base_buf_free(struct base_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int base_parse_int64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return BASE_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return BASE_ERANGE;
    if (end == s || *end != '\0')
        return BASE_EINVAL;
    *out = (int64_t)v;
    return BASE_OK;
}

int base_parse_double(const char *s, double *out)
{
    char *end;
    double v;

    if (s == NULL || *s == '\0')
        return BASE_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (errno == ERANGE || !isfinite(v))
        return BASE_ERANGE;
    if (end == s || *end != '\0')
        return BASE_EINVAL;
    *out = v;
    return BASE_OK;
}

int base_snprintf(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (r < 0)
        return BASE_EINVAL;
    if ((size_t)r >= n)
        return BASE_ETOOBIG;
    return BASE_OK;
}

char *base_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}
