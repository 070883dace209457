/*
 * response.c -- what a handler writes, and how it goes on the wire.
 *
 * Buffered by default (gf's way): headers and body collect in the response's
 * buffers, which belong to the connection and are reused for every request,
 * and grace__response_finish() serializes head and body into the
 * connection's output buffer for one send(). grace_response_flush() switches
 * to streaming: the head goes out at once, chunked for HTTP/1.1 unless the
 * handler set a Content-Length, close-delimited for HTTP/1.0, and each flush
 * writes what was written since, blocking the handler thread (never a loop).
 * Header names and values are checked here, so a handler cannot split a
 * response with CR/LF. SPEC S3.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void grace__response_reset(grace_response_t *res, const grace_request_t *req)
{
    res->req = req;
    res->status = 200;
    res->headers.len = 0;
    res->body.len = 0;
    res->has_content_type = false;
    res->conn_close = false;
    res->streaming = false;
    res->chunked = false;
    res->failed = false;
    res->fixed_length = -1;
}

int grace_response_set_status(grace_response_t *res, int status)
{
    /* 1xx are interim answers grace sends itself (100 Continue); a final
     * answer is 200-999. */
    if (status < 200 || status > 999)
        return GRACE_EINVAL;
    if (res->streaming)
        return GRACE_ESENT;
    res->status = status;
    return 0;
}

int grace_response_status(const grace_response_t *res)
{
    return res->status;
}

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", ch))
            return false;
    }
    return true;
}

static bool name_is(const char *name, const char *what)
{
    return strcasecmp(name, what) == 0;
}

/* Remove every "name:" line from the header block. */
static void remove_header(grace__buf_t *h, const char *name)
{
    size_t len = strlen(name), i = 0;
    while (i < h->len) {
        char *eol = memchr(h->ptr + i, '\n', h->len - i);
        size_t line_end = eol ? (size_t)(eol - h->ptr) + 1 : h->len;
        if (line_end - i > len && h->ptr[i + len] == ':' &&
            strncasecmp(h->ptr + i, name, len) == 0) {
            memmove(h->ptr + i, h->ptr + line_end, h->len - line_end);
            h->len -= line_end - i;
        } else {
            i = line_end;
        }
    }
}

static int put_header(grace_response_t *res, const char *name, const char *value, bool replace)
{
    if (name == NULL || value == NULL || !is_token(name))
        return GRACE_EINVAL;
    for (const char *v = value; *v; v++)
        if (*v == '\r' || *v == '\n')
            return GRACE_EINVAL;
    if (res->streaming)
        return GRACE_ESENT;
    /* Framing headers are grace's job; the handler's wishes are noted. */
    if (name_is(name, "Transfer-Encoding"))
        return GRACE_EINVAL;
    if (name_is(name, "Connection")) {
        res->conn_close = strcasecmp(value, "close") == 0;
        return 0;
    }
    if (name_is(name, "Content-Length")) {
        char *end;
        errno = 0;
        long long n = strtoll(value, &end, 10);
        if (*value < '0' || *value > '9' || *end || errno || n < 0)
            return GRACE_EINVAL;
        res->fixed_length = n;
        return 0;
    }
    if (name_is(name, "Content-Type"))
        res->has_content_type = true;
    if (replace)
        remove_header(&res->headers, name);
    grace__buf_t *h = &res->headers;
    if (grace__buf_appends(h, name) < 0 || grace__buf_append(h, ": ", 2) < 0 ||
        grace__buf_appends(h, value) < 0 || grace__buf_append(h, "\r\n", 2) < 0)
        return GRACE_ENOMEM;
    return 0;
}

int grace_response_set_header(grace_response_t *res, const char *name, const char *value)
{
    return put_header(res, name, value, true);
}

int grace_response_add_header(grace_response_t *res, const char *name, const char *value)
{
    return put_header(res, name, value, false);
}

int grace_response_write(grace_response_t *res, const void *data, size_t len)
{
    return grace__buf_append(&res->body, data, len);
}

int grace_response_writeln(grace_response_t *res, const char *s)
{
    if (grace__buf_appends(&res->body, s) < 0)
        return GRACE_ENOMEM;
    return grace__buf_append(&res->body, "\n", 1);
}

int grace_response_vwritef(grace_response_t *res, const char *fmt, va_list ap)
{
    return grace__buf_vappendf(&res->body, fmt, ap);
}

int grace_response_writef(grace_response_t *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = grace__buf_vappendf(&res->body, fmt, ap);
    va_end(ap);
    return r;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* No overlong forms, no surrogates, nothing past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

int grace_response_write_json_string(grace_response_t *res, const char *data, size_t len)
{
    grace__buf_t *b = &res->body;
    static const char hex[] = "0123456789abcdef";
    if (grace__buf_reserve(b, len + 2) < 0 || grace__buf_append(b, "\"", 1) < 0)
        return GRACE_ENOMEM;
    const unsigned char *p = (const unsigned char *)data, *end = p + len;
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (grace__buf_append(b, run, (size_t)(p - run)) < 0)
            return GRACE_ENOMEM;
        if (p == end)
            break;
        int r = 0;
        char esc[8];
        switch (*p) {
        case '"':
            r = grace__buf_append(b, "\\\"", 2);
            break;
        case '\\':
            r = grace__buf_append(b, "\\\\", 2);
            break;
        case '\n':
            r = grace__buf_append(b, "\\n", 2);
            break;
        case '\r':
            r = grace__buf_append(b, "\\r", 2);
            break;
        case '\t':
            r = grace__buf_append(b, "\\t", 2);
            break;
        default:
            if (*p < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[*p >> 4];
                esc[5] = hex[*p & 15];
                r = grace__buf_append(b, esc, 6);
            } else {
                size_t n = utf8_len(p, (size_t)(end - p));
                if (n == 0) {
                    r = grace__buf_append(b, "\xef\xbf\xbd", 3); /* U+FFFD */
                    n = 1;
                } else {
                    r = grace__buf_append(b, p, n);
                }
                p += n;
                if (r < 0)
                    return GRACE_ENOMEM;
                continue;
            }
        }
        if (r < 0)
            return GRACE_ENOMEM;
        p++;
    }
    return grace__buf_append(b, "\"", 1);
}

int grace_response_json(grace_response_t *res, int status, const char *json)
{
    int r = grace_response_set_status(res, status);
    if (r == 0)
        r = grace_response_set_header(res, "Content-Type", "application/json");
    if (r == 0)
        r = grace__buf_appends(&res->body, json);
    return r;
}

int grace_response_clear(grace_response_t *res)
{
    if (res->streaming)
        return GRACE_ESENT;
    res->body.len = 0;
    return 0;
}

/* ---- Serialization -------------------------------------------------------- */

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 205 && status != 304;
}

static int append_status_line(grace__buf_t *out, int status)
{
    char line[64];
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, grace__status_text(status));
    return grace__buf_append(out, line, (size_t)n);
}

bool grace__response_keep_alive(const grace_response_t *res)
{
    const grace_request_t *req = res->req;
    /* grace never opens a CONNECT tunnel: close after answering one, so a
     * proxy in front that assumed a tunnel cannot pass bytes on as
     * requests. A draining server answers with "Connection: close". */
    bool is_connect = req->h.method.len == 7 && memcmp(req->h.method.ptr, "CONNECT", 7) == 0;
    return req->h.keep_alive && !res->conn_close && !is_connect &&
           atomic_load(&req->server->state) == GRACE__SRV_RUNNING;
}

enum { FRAME_LENGTH, FRAME_CHUNKED, FRAME_NONE };

/* The whole head: status line, Server, Date, the handler's headers, a
 * default Content-Type, the framing (Content-Length: length, chunked, or
 * nothing), Connection, and the empty line. The one head builder for
 * buffered answers (finish) and streamed ones (flush). */
static int append_head(grace__buf_t *out, const grace_response_t *res, int frame,
                       uint64_t length, bool keep)
{
    char date[32];
    grace__http_date(date);
    const grace_request_t *req = res->req;
    const char *server_header = req->server->server_header;
    int r = 0;
    if (res->status == 200)
        r |= grace__buf_append(out, "HTTP/1.1 200 OK\r\n", 17);
    else
        r |= append_status_line(out, res->status);
    if (server_header[0]) {
        r |= grace__buf_append(out, "Server: ", 8);
        r |= grace__buf_appends(out, server_header);
        r |= grace__buf_append(out, "\r\n", 2);
    }
    r |= grace__buf_append(out, "Date: ", 6);
    r |= grace__buf_append(out, date, 29);
    r |= grace__buf_append(out, "\r\n", 2);
    r |= grace__buf_append(out, res->headers.ptr, res->headers.len);
    if (!res->has_content_type && status_has_body(res->status))
        r |= grace__buf_appends(out, "Content-Type: text/plain; charset=utf-8\r\n");
    if (frame == FRAME_LENGTH) {
        r |= grace__buf_append(out, "Content-Length: ", 16);
        r |= grace__buf_append_u64(out, length);
        r |= grace__buf_append(out, "\r\n", 2);
    } else if (frame == FRAME_CHUNKED) {
        r |= grace__buf_appends(out, "Transfer-Encoding: chunked\r\n");
    }
    if (!keep)
        r |= grace__buf_appends(out, "Connection: close\r\n");
    else if (req->h.minor_version == 0)
        r |= grace__buf_appends(out, "Connection: keep-alive\r\n");
    r |= grace__buf_append(out, "\r\n", 2);
    return r ? GRACE_ENOMEM : 0;
}

static int append_chunk(grace__buf_t *out, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    int r = grace__buf_append(out, size, (size_t)n);
    r |= grace__buf_append(out, data, len);
    r |= grace__buf_append(out, "\r\n", 2);
    return r ? GRACE_ENOMEM : 0;
}

/* The body written since the last flush, framed as the head said. */
static int append_body(grace__buf_t *out, const grace_response_t *res)
{
    if (res->req->is_head || !status_has_body(res->status))
        return 0;
    if (res->chunked)
        return append_chunk(out, res->body.ptr, res->body.len);
    return grace__buf_append(out, res->body.ptr, res->body.len);
}

int grace__response_finish(grace_response_t *res, grace__buf_t *out)
{
    int r = 0;
    if (!res->streaming) {
        bool keep = grace__response_keep_alive(res);
        /* A HEAD answer may announce the length a GET would have; 205 has
         * no content but is framed (it is not bodiless by rule); 1xx, 204
         * and 304 have no framing at all. */
        uint64_t len = (res->req->is_head && res->body.len == 0 && res->fixed_length >= 0)
                           ? (uint64_t)res->fixed_length
                           : res->body.len;
        if (res->status == 205)
            len = 0;
        bool framed = res->status >= 200 && res->status != 204 && res->status != 304;
        r |= append_head(out, res, framed ? FRAME_LENGTH : FRAME_NONE, len, keep);
        res->conn_close = !keep;
    }
    r |= append_body(out, res);
    if (res->streaming && res->chunked && !res->req->is_head && status_has_body(res->status))
        r |= grace__buf_append(out, "0\r\n\r\n", 5);
    return r ? GRACE_ENOMEM : 0;
}

int grace_response_flush(grace_response_t *res)
{
    if (res->failed)
        return -EPIPE;
    const grace_request_t *req = res->req;
    bool send_body = !req->is_head && status_has_body(res->status);
    grace__buf_t tmp = {0};
    int r = 0;
    if (!res->streaming) {
        bool keep = grace__response_keep_alive(res);
        int frame = FRAME_NONE;
        uint64_t length = 0;
        if (res->status == 205) {
            frame = FRAME_LENGTH; /* framed, with no content: as finish does */
        } else if (res->fixed_length >= 0 && status_has_body(res->status)) {
            frame = FRAME_LENGTH;
            length = (uint64_t)res->fixed_length;
        } else if (send_body && req->h.minor_version == 1) {
            frame = FRAME_CHUNKED;
        } else if (send_body) {
            keep = false; /* HTTP/1.0: the end of the body is the close */
        }
        r |= append_head(&tmp, res, frame, length, keep);
        res->chunked = frame == FRAME_CHUNKED;
        res->conn_close = !keep;
        res->streaming = true;
    }
    r |= append_body(&tmp, res);
    res->body.len = 0;
    if (r == 0 && tmp.len)
        r = res->write(res->write_ctx, tmp.ptr, tmp.len);
    else if (r)
        r = GRACE_ENOMEM;
    grace__buf_free(&tmp);
    if (r < 0)
        res->failed = true;
    return r;
}

int grace__response_error(grace__buf_t *out, int status, const char *server_header)
{
    char date[32];
    grace__http_date(date);
    const char *text = grace__status_text(status);
    int r = append_status_line(out, status);
    if (server_header[0])
        r |= grace__buf_appendf(out, "Server: %s\r\n", server_header);
    if (status == 503) /* grace answers 503 only for a passing condition */
        r |= grace__buf_appends(out, "Retry-After: 1\r\n");
    r |= grace__buf_appendf(out,
                            "Date: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                            date, strlen(text) + 1, text);
    return r ? GRACE_ENOMEM : 0;
}
