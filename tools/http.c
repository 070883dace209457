/*
 * http.c -- gracectl's HTTP client: one GET at a time, through libcurl.
 *
 * libcurl (Debian's libcurl4-openssl-dev) rather than grace's own code:
 * grace is a server, and its HTTP code parses requests, not answers; a
 * client needs answer framing, redirects left alone, DNS, proxies from the
 * environment, and HTTPS with certificate checks against the system's CAs
 * (or --cacert), which libcurl gives for free and which a tool holding an
 * admin token must get right.
 *
 * Each call makes its own easy handle, so threads (a parallel rolling
 * restart) share nothing but the global set-up done once in main(). No
 * signals (CURLOPT_NOSIGNAL): a DNS timeout cannot be enforced with alarm()
 * in a threaded program; --timeout still bounds the whole request. Answers
 * are capped at MAX_BODY: the admin's are a few hundred bytes.
 */
#include "gracectl.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_ADMIN_PATH "/debug/admin"

enum { MAX_BODY = 1 << 20, CONNECT_TIMEOUT_MS = 10000 };

typedef struct {
    http_reply_t *r;
    bool too_big;
    const http_opts_t *o;
} sink_t;

int http_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? CTL_OK : CTL_FAILED;
}

void http_cleanup(void)
{
    curl_global_cleanup();
}

void http_reply_free(http_reply_t *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *user)
{
    sink_t *s = user;
    http_reply_t *r = s->r;
    size_t len = size * n;
    if (r->body_len + len > MAX_BODY) {
        s->too_big = true;
        return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
    char *grown = realloc(r->body, r->body_len + len + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + r->body_len, data, len);
    r->body = grown;
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

/* One header line ("Name: value\r\n"); only Retry-After matters. */
static size_t on_header(char *line, size_t size, size_t n, void *user)
{
    sink_t *s = user;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && strncasecmp(line, name, sizeof name - 1) == 0) {
        char v[32];
        size_t vlen =
            len - (sizeof name - 1) < sizeof v - 1 ? len - (sizeof name - 1) : sizeof v - 1;
        memcpy(v, line + sizeof name - 1, vlen);
        v[vlen] = '\0';
        char *end;
        long secs = strtol(v, &end, 10);
        if (end != v && secs >= 0 && secs < 86400)
            s->r->retry_after_s = (int)secs;
    }
    return len;
}

static int on_progress(void *user, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    const sink_t *s = user;
    s->o->tick(s->o->tick_user);
    return 0;
}

static void set_options(CURL *c, const char *url, const http_opts_t *o, sink_t *s,
                        struct curl_slist *headers, char *err)
{
    long timeout_ms = (long)(o->timeout_s * 1000);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "gracectl");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    if (o->cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
    if (o->tick) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    }
}

/* What a failed transfer means for the caller. */
static int classify(CURL *c, CURLcode rc, const sink_t *s, const char *err, http_reply_t *r)
{
    long os_errno = 0;
    curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
    r->refused = rc == CURLE_COULDNT_CONNECT && os_errno == ECONNREFUSED;
    if (s->too_big)
        snprintf(r->error, sizeof r->error, "the answer is larger than %d bytes", MAX_BODY);
    else
        snprintf(r->error, sizeof r->error, "%s", err[0] ? err : curl_easy_strerror(rc));
    http_reply_free(r);
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        return CTL_UNREACHABLE;
    default:
        return CTL_FAILED; /* a timeout, a connection closed without an answer, ... */
    }
}

int http_get(const char *url, const http_opts_t *o, http_reply_t *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after_s = -1;
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(r->error, sizeof r->error, "libcurl cannot start a transfer");
        return CTL_FAILED;
    }
    struct curl_slist *headers = curl_slist_append(NULL, "Accept: application/json");
    if (headers && o->token && o->token[0]) {
        char auth[1100];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->token);
        struct curl_slist *more = curl_slist_append(headers, auth);
        headers = more ? more : headers;
    }
    char err[CURL_ERROR_SIZE] = "";
    sink_t s = {r, false, o};
    set_options(c, url, o, &s, headers, err);
    CURLcode rc = curl_easy_perform(c);
    int ret = CTL_OK;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else
        ret = classify(c, rc, &s, err, r);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return ret;
}

/* ---- URLs ------------------------------------------------------------------------ */

static bool copy_part(CURLU *u, CURLUPart part, char *out, size_t cap)
{
    char *v = NULL;
    if (curl_url_get(u, part, &v, 0) != CURLUE_OK)
        return false;
    bool fits = strlen(v) < cap;
    if (fits)
        memcpy(out, v, strlen(v) + 1);
    curl_free(v);
    return fits;
}

/* The scheme must be http or https; no query or fragment: the base gets
 * "/status" and the like appended. */
static bool check_base(CURLU *u, char *why, size_t why_len)
{
    char scheme[16] = "";
    if (!copy_part(u, CURLUPART_SCHEME, scheme, sizeof scheme) ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(why, why_len, "only http:// and https:// URLs are admin URLs");
        return false;
    }
    char *v = NULL;
    if (curl_url_get(u, CURLUPART_QUERY, &v, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &v, 0) == CURLUE_OK) {
        curl_free(v);
        snprintf(why, why_len, "an admin URL has no '?' or '#' part (give a token with --token)");
        return false;
    }
    return true;
}

int http_admin_base(const char *in, char *out, size_t cap, char *why, size_t why_len)
{
    CURLU *u = curl_url();
    if (u == NULL) {
        snprintf(why, why_len, "out of memory");
        return CTL_FAILED;
    }
    int ret = CTL_USAGE;
    char path[2048], with_scheme[4096];
    /* "host:port" means http (libcurl's own default scheme is https) */
    if (strstr(in, "://") == NULL &&
        snprintf(with_scheme, sizeof with_scheme, "http://%s", in) < (int)sizeof with_scheme)
        in = with_scheme;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, in, 0);
    if (rc != CURLUE_OK) {
        snprintf(why, why_len, "%s is not a URL: %s", in, curl_url_strerror(rc));
    } else if (check_base(u, why, why_len) && copy_part(u, CURLUPART_PATH, path, sizeof path)) {
        size_t len = strlen(path);
        while (len > 0 && path[len - 1] == '/')
            path[--len] = '\0';
        if (len == 0) /* a bare http://host:port */
            snprintf(path, sizeof path, "%s", DEFAULT_ADMIN_PATH);
        if (curl_url_set(u, CURLUPART_PATH, path, 0) == CURLUE_OK &&
            copy_part(u, CURLUPART_URL, out, cap))
            ret = CTL_OK;
        else
            snprintf(why, why_len, "%s: URL too long", in);
    } else if (why[0] == '\0') {
        snprintf(why, why_len, "%s: URL too long", in);
    }
    curl_url_cleanup(u);
    return ret;
}

int http_with_path(const char *base, const char *path, char *out, size_t cap)
{
    CURLU *u = curl_url();
    char p[2048];
    snprintf(p, sizeof p, "%s", path);
    char *query = strchr(p, '?');
    if (query)
        *query++ = '\0';
    bool ok = u && curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
              curl_url_set(u, CURLUPART_PATH, p, 0) == CURLUE_OK &&
              curl_url_set(u, CURLUPART_QUERY, query, 0) == CURLUE_OK &&
              copy_part(u, CURLUPART_URL, out, cap);
    curl_url_cleanup(u);
    return ok ? CTL_OK : CTL_USAGE;
}

/* Percent-encode s (everything but RFC 3986's unreserved characters). */
static bool url_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~';
        if (n + 4 > cap)
            return false;
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return true;
}

int http_action_url(const char *base, const char *action, const char *exe, char *out, size_t cap)
{
    char enc[3 * 4096 + 1] = "";
    if (exe && !url_encode(exe, enc, sizeof enc))
        return CTL_USAGE;
    int n = snprintf(out, cap, "%s/%s%s%s", base, action, exe ? "?newExeFilePath=" : "", enc);
    return n > 0 && (size_t)n < cap ? CTL_OK : CTL_USAGE;
}
