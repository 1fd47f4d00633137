/*
 * fuzz_headers.c: libFuzzer target for response classification and the x-keap-* headers
 * (keap_read_headers, keap_classify_api). Input: a first line "<status>", then header lines
 * "name: value" up to an empty line, then the body.
 */
#include "http.h" /* before keap.h: see cli_int.h */
#include "keap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dup_range(const char *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_header hdr[MAX_HEADERS];
    struct http_response resp;
    struct pace_observation obs;
    struct keap_verdict v;
    const char *p = (const char *)data, *end = p + size, *nl;
    size_t nh = 0;

    memset(&resp, 0, sizeof(resp));
    nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
        return 0;
    {
        char line[16];
        size_t n = (size_t)(nl - p) < sizeof(line) - 1 ? (size_t)(nl - p) : sizeof(line) - 1;

        memcpy(line, p, n);
        line[n] = '\0';
        resp.status = strtol(line, NULL, 10);
    }
    p = nl + 1;
    while (p < end && nh < MAX_HEADERS) {
        const char *colon, *v0;

        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            nl = end;
        if (nl == p) { /* empty line: the body follows */
            p++;
            break;
        }
        colon = memchr(p, ':', (size_t)(nl - p));
        if (colon == NULL)
            colon = nl;
        hdr[nh].name = dup_range(p, (size_t)(colon - p));
        for (char *c = hdr[nh].name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        v0 = colon < nl ? colon + 1 : nl;
        while (v0 < nl && (*v0 == ' ' || *v0 == '\t'))
            v0++;
        hdr[nh].value = dup_range(v0, (size_t)(nl - v0));
        nh++;
        p = nl < end ? nl + 1 : end;
    }
    resp.headers = hdr;
    resp.nheaders = nh;
    base_buf_init(&resp.body, 1u << 20);
    if (p < end)
        base_buf_append(&resp.body, p, (size_t)(end - p));

    keap_read_headers(&resp, &obs);
    keap_classify_api(&resp, KEAP_API_V1, 1700000000000, &v);
    keap_classify_api(&resp, KEAP_API_V2, 1700000000000, &v);
    keap_classify(&resp, 1700000000000, &v);
    if (memchr(v.reason, '\0', sizeof(v.reason)) == NULL)
        abort(); /* the reason must stay a terminated string */

    base_buf_free(&resp.body);
    for (size_t i = 0; i < nh; i++) {
        free(hdr[i].name);
        free(hdr[i].value);
    }
    return 0;
}
