/*
 * http: libcurl multi handles driven by a libuv loop. Knows nothing of Keap.
 *
 * Words used here:
 *   client    one curl multi handle bound to one uv loop; owns every transfer in flight.
 *   call      one transfer (one easy handle), started by http_send and finished by exactly
 *             one call of its done callback.
 *   response  what a call produced: status, headers, body, timings, transport error.
 *
 * Shape follows curl's docs/examples/multi-uv.c with its known bugs fixed: every
 * curl_multi_socket_action is followed by draining curl_multi_info_read, poll errors map to
 * CURL_CSELECT_ERR, every allocation is checked, and handles are freed in close callbacks.
 */
#ifndef KEAPSYNC_HTTP_H
#define KEAPSYNC_HTTP_H

#include "base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_client;

struct http_header {
    char *name;  /* lower-cased */
    char *value; /* surrounding whitespace trimmed; may be "" */
};

struct http_response {
    long status;          /* HTTP status, 0 when the transport failed */
    int transport_error;  /* CURLcode; 0 = CURLE_OK */
    char error[256];      /* curl's message when transport_error != 0, else "" */
    int body_too_big;     /* the body exceeded the client's max_body (the call failed) */
    struct base_buf body; /* capped at the client's max_body; see http_done_cb for ownership */
    struct http_header *headers; /* the final response's headers (not of redirects/100s) */
    size_t nheaders;
    uint64_t sent_mono_ms;    /* loop time when the call was handed to curl */
    uint64_t done_mono_ms;    /* loop time when it finished */
    double connect_s;         /* curl's CURLINFO_CONNECT_TIME, seconds */
    double total_s;           /* curl's CURLINFO_TOTAL_TIME, seconds */
    uint64_t request_mono_us; /* CLOCK_MONOTONIC us when curl was about to write the request
                               * to its connection (CURLOPT_PREREQFUNCTION); 0 unknown */
    int64_t tcp_rttvar_us;    /* TCP_INFO rttvar of the connection at the end; -1 unknown */
    int64_t tcp_min_rtt_us;   /* TCP_INFO min_rtt (the path's least round trip); -1 unknown */
};

/*
 * Called exactly once per call that http_send accepted, on the loop thread. The response is
 * owned by the client and freed when the callback returns, except its body: the callback may
 * take the body by copying the struct base_buf and setting resp->body.data to NULL.
 * The callback may start new calls. It is also called (status 0, transport_error set) for
 * calls canceled by http_client_close.
 */
typedef void (*http_done_cb)(struct http_response *resp, void *data);

struct http_options {
    size_t max_body;         /* cap for a response body; exceeding it fails the call */
    long connect_timeout_ms; /* 0: 10 s */
    long timeout_ms;         /* whole transfer; 0: 120 s */
    long low_speed_time_s;   /* abort when slower than 1 byte/s for this long; 0: 30 s */
    int max_connections;     /* CURLMOPT_MAX_TOTAL_CONNECTIONS; 0: 16 */
    const char *user_agent;  /* NULL: "keapsync/<version>" */
};

struct http_request {
    const char *method;         /* NULL or "GET"; "POST" sends body */
    const char *url;            /* copied by http_send */
    const char *const *headers; /* NULL-terminated "Name: value" lines; copied; may be NULL */
    const char *body;           /* copied; POST only */
    size_t body_len;
};

/* Creates a client on loop. *out is set only on success. */
int http_client_new(struct http_client **out, uv_loop_t *loop, const struct http_options *opt);

/*
 * Starts one call. Returns 0 and later calls cb once; or returns an error code and never
 * calls cb. Header lines may carry secrets: they are never logged.
 */
int http_send(struct http_client *c, const struct http_request *req, http_done_cb cb, void *data);

/* Calls in flight. */
size_t http_client_pending(const struct http_client *c);

/*
 * Cancels every call still in flight (each gets its callback with transport_error set to
 * CURLE_ABORTED_BY_CALLBACK) and frees the client once its uv handles are closed; run the
 * loop until it has no more active handles afterwards. Accepts NULL.
 */
void http_client_close(struct http_client *c);

/* Case-insensitive look-up of a response header; NULL when absent. */
const char *http_response_header(const struct http_response *resp, const char *name);

/*
 * TLS, for every call of every client made after: peer and host verification are always on
 * (CURLOPT_SSL_VERIFYPEER 1, CURLOPT_SSL_VERIFYHOST 2), against ca_file when it is set
 * (CURLOPT_CAINFO, a PEM bundle) or libcurl's default store. insecure turns verification off,
 * but only for calls whose URL's host is a loopback address (http_url_is_loopback): a call to
 * any other host is verified whatever insecure says. Copies ca_file. Call it once, before any
 * client sends (it is not thread-safe); NULL restores the defaults.
 */
struct http_tls {
    const char *ca_file; /* NULL: libcurl's default CA store */
    bool insecure;       /* no verification for loopback hosts (tests) */
};
int http_tls_configure(const struct http_tls *tls);

/*
 * Is host a loopback address: 127.0.0.0/8, ::1 (bracketed or not, or IPv4-mapped
 * ::ffff:127.x.y.z), or "localhost" (any case, with or without a final dot)? Names that
 * would need a resolver to say (other names, "127.1", "foo.localhost") are not.
 */
bool http_host_is_loopback(const char *host);
/*
 * Is url's host (libcurl's URL parser) a loopback address? host, when not NULL, gets the host
 * as parsed ("" when url has none), for messages.
 */
bool http_url_is_loopback(const char *url, char *host, size_t n);
/* Is transport_error (a CURLcode) a failed TLS verification, which no retry can mend? */
bool http_error_is_tls_verify(int transport_error);

/* curl_global_init/cleanup wrappers: call once per process. */
int http_global_init(void);
void http_global_cleanup(void);

#endif
