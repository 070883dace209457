/*
 * echo.c -- answers every request, any method, any path, with a JSON picture
 * of what grace parsed, so tests (and curious people) can see exactly what a
 * handler receives:
 *
 *   {"method":"POST","target":"/a%20b?x=1","path":"/a b","query":"x=1",
 *    "host":"127.0.0.1:8081",
 *    "headers":[["Host","127.0.0.1:8081"],["Content-Length","5"]],
 *    "body":"hello","body_b64":"aGVsbG8="}
 *
 * method and target are byte-exact as received; path is percent-decoded;
 * query is the raw query string ("" when there is none); host is where the
 * request is addressed (an absolute-form target's authority wins over the
 * Host header, RFC 9112 3.2.2); headers keep the received order and the
 * names' case. Header names and values are byte for byte: a byte from 0x80
 * to 0xFF (obs-text, allowed in values by RFC 9110) is written as the code
 * point of the same number, \u0080 to \u00ff, so decoding the JSON string
 * as Latin-1 gives the exact bytes back (UTF-8 "é" shows as "Ã©"). body is
 * the body as a JSON string (invalid UTF-8 shown as U+FFFD) and body_b64
 * its exact bytes in base64.
 *
 * Run `echo --port 8081`. --max-body, --max-header-bytes, --read-timeout-ms
 * and --idle-timeout-ms set grace's limits, so their answers (413, 431, a
 * closed connection) can be tried quickly.
 */
#include "grace.h"
#include "flags.h"

#include <stdio.h>

/* Write len bytes of data as standard base64 (with '=' padding). */
static int write_base64(grace_response_t *res, const unsigned char *data, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4096]; /* a multiple of 4: whole groups per write */
    size_t n = 0;
    int rc = 0;

    for (size_t i = 0; i < len; i += 3) {
        size_t left = len - i;
        unsigned v = (unsigned)data[i] << 16;
        if (left > 1)
            v |= (unsigned)data[i + 1] << 8;
        if (left > 2)
            v |= data[i + 2];
        out[n++] = abc[(v >> 18) & 63];
        out[n++] = abc[(v >> 12) & 63];
        out[n++] = left > 1 ? abc[(v >> 6) & 63] : '=';
        out[n++] = left > 2 ? abc[v & 63] : '=';
        if (n == sizeof(out)) {
            if ((rc = grace_response_write(res, out, n)) < 0)
                return rc;
            n = 0;
        }
    }
    return n > 0 ? grace_response_write(res, out, n) : 0;
}

/* Write a view as a JSON string; an absent view ({NULL,0}) as "". */
static int write_str(grace_response_t *res, grace_str_t s)
{
    return grace_response_write_json_string(res, s.ptr ? s.ptr : "", s.len);
}

/* Write a view as a JSON string byte for byte: bytes 0x80-0xFF as
 * \u0080-\u00ff (Latin-1), so no byte is lost or merged. */
static int write_bytes(grace_response_t *res, grace_str_t s)
{
    char out[256];
    size_t n = 0;
    int rc;
    out[n++] = '"';
    for (size_t i = 0; i < s.len; i++) {
        unsigned char b = (unsigned char)s.ptr[i];
        if (n + 6 >= sizeof out) {
            if ((rc = grace_response_write(res, out, n)) < 0)
                return rc;
            n = 0;
        }
        if (b == '"' || b == '\\') {
            out[n++] = '\\';
            out[n++] = (char)b;
        } else if (b < 0x20 || b >= 0x7f) {
            n += (size_t)snprintf(out + n, sizeof out - n, "\\u%04x", b);
        } else {
            out[n++] = (char)b;
        }
    }
    out[n++] = '"';
    return grace_response_write(res, out, n);
}

static int write_lit(grace_response_t *res, const char *s)
{
    return grace_response_write(res, s, strlen(s));
}

static int handle_echo(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    const grace_header_t *headers = NULL;
    size_t n_headers = grace_request_headers(req, &headers);
    grace_str_t body = grace_request_body(req);
    int rc;

    /* Each write returns <0 only when out of memory; stop at the first. */
    if ((rc = grace_response_set_header(res, "Content-Type", "application/json")) < 0 ||
        (rc = write_lit(res, "{\"method\":")) < 0 ||
        (rc = write_str(res, grace_request_method(req))) < 0 ||
        (rc = write_lit(res, ",\"target\":")) < 0 ||
        (rc = write_str(res, grace_request_target(req))) < 0 ||
        (rc = write_lit(res, ",\"path\":")) < 0 ||
        (rc = write_str(res, grace_request_path(req))) < 0 ||
        (rc = write_lit(res, ",\"query\":")) < 0 ||
        (rc = write_str(res, grace_request_query_string(req))) < 0 ||
        (rc = write_lit(res, ",\"host\":")) < 0 ||
        (rc = write_bytes(res, grace_request_host(req))) < 0 ||
        (rc = write_lit(res, ",\"headers\":[")) < 0)
        return rc;
    for (size_t i = 0; i < n_headers; i++) {
        if ((rc = write_lit(res, i == 0 ? "[" : ",[")) < 0 ||
            (rc = write_bytes(res, headers[i].name)) < 0 || (rc = write_lit(res, ",")) < 0 ||
            (rc = write_bytes(res, headers[i].value)) < 0 || (rc = write_lit(res, "]")) < 0)
            return rc;
    }
    if ((rc = write_lit(res, "],\"body\":")) < 0 || (rc = write_str(res, body)) < 0 ||
        (rc = write_lit(res, ",\"body_b64\":\"")) < 0 ||
        (rc = write_base64(res, (const unsigned char *)body.ptr, body.len)) < 0 ||
        (rc = write_lit(res, "\"}")) < 0)
        return rc;
    return 0;
}

int main(int argc, char **argv)
{
    static const int default_port = 8081;
    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--port", &default_port, 1, "echo [--port N]",
                   "Answers every request with a JSON picture of it: method, target, path,\n"
                   "query, host, headers (names and values byte for byte: bytes 0x80-0xFF\n"
                   "as \\u0080-\\u00ff, so Latin-1 decoding gives the exact bytes back), and\n"
                   "the body (as text, and exactly in body_b64).",
                   0);

    grace_server_t *s = grace_server(NULL);
    if (s == NULL) {
        fprintf(stderr, "%s: out of memory\n", f.prog);
        return 1;
    }
    /* One route for everything: a lone wildcard segment (named "any") may be
     * empty, so it matches "/" too; with no method prefix, every method comes
     * here. */
    ex_check(&f, grace_server_bind_handler(s, "/*", handle_echo, NULL), "bind /*");
    ex_configure(s, &f, f.ports, f.n_ports);

    int rc = grace_server_run(s);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start: %s\n", f.prog, grace_strerror(rc));
        return 1;
    }
    return 0;
}
