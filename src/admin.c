/*
 * admin.c -- the admin interface (gf's EnableAdmin): under one pattern, an
 * HTML page, a JSON status and the restart / reload / shutdown actions.
 * SPEC A1-A3, B4. The page's HTML is in admin_page.c, to keep this file
 * about who may use the admin.
 *
 * enable_admin copies its options into an admin_t that lives as long as the
 * process and is read-only once made, so workers read it without locks. A
 * middleware on the pattern's prefix guards every request under it, routed
 * or not, before any handler: (1) no header it decides by sent twice; (2) a
 * Host that names this server (IP address, localhost, allowed_hosts), which
 * is what stops DNS rebinding; (3) nothing cross-site or embedded (Fetch
 * Metadata, then Origin, then Referer); (4) the auth hook, else the token,
 * else a trusted network (loopback). Each refusal: a 403 and one log line.
 * Actions also refuse prefetches and methods but GET/POST, and check
 * newExeFilePath (place, then owner and mode) before grace_restart(), which
 * blocks until the outcome.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_PATTERN "/debug/admin"

typedef struct {
    char *pattern; /* no trailing '/' */
    char *token;   /* NULL: none */
    size_t token_len;
    grace_admin_auth_cb auth;
    void *auth_user;
    bool check_network; /* default policy, or trusted_networks given explicitly */
    grace__cidr_t *nets;
    size_t n_nets;
    char **dirs; /* allowed_exe_dirs, as given (resolved at request time) */
    size_t n_dirs;
    char **hosts; /* allowed_hosts */
    size_t n_hosts;
} admin_t;

/* ---- Small helpers ---------------------------------------------------------- */

static bool str_is(grace_str_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.ptr, lit, n) == 0;
}

static bool str_has(grace_str_t s, const char *lit)
{
    return s.ptr != NULL && memmem(s.ptr, s.len, lit, strlen(lit)) != NULL;
}

/* Token comparison whose time does not depend on where the bytes differ. */
static bool token_equal(const admin_t *a, grace_str_t got)
{
    unsigned char d = got.len != a->token_len;
    for (size_t i = 0; i < a->token_len; i++)
        d |= (unsigned char)(a->token[i] ^ (i < got.len ? got.ptr[i] : 0));
    return d == 0;
}

/* A client-supplied string made safe for a log line: printable ASCII only,
 * at most cap - 1 bytes. */
static void printable(char *out, size_t cap, grace_str_t s)
{
    grace__printable(out, cap, s.ptr ? s.ptr : "", s.len, '?');
}

static bool wants_json(const grace_request_t *req)
{
    return str_has(grace_request_header(req, "Accept"), "application/json");
}

/* An error answer: text, or {"ok":false,"error":...} for a client that
 * asked for JSON. Replaces anything written before. */
static void answer_error(grace_request_t *req, grace_response_t *res, int status,
                         const char *prefix, const char *why)
{
    grace_response_clear(res);
    grace_response_set_status(res, status);
    if (wants_json(req)) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", prefix, why);
        grace_response_set_header(res, "Content-Type", "application/json");
        grace_response_writef(res, "{\"ok\":false,\"error\":");
        grace_response_write_json_string(res, text, strlen(text));
        grace_response_writef(res, "}\n");
        return;
    }
    grace_response_writef(res, "%s%s\n", prefix, why);
}

/* Refuse a request: one log line, and a 403 with the reason. */
static void refuse(grace_request_t *req, grace_response_t *res, const char *why)
{
    char method[16], path[128];
    printable(method, sizeof method, grace_request_method(req));
    printable(path, sizeof path, grace_request_path(req));
    grace_log("admin: refused %s %s from %s: %s", method, path, grace_request_client_ip(req), why);
    answer_error(req, res, 403, "", why);
}

/* ---- Networks (cidr.c parses and matches) ----------------------------------- */

static bool is_trusted_ip(const admin_t *a, const char *ip)
{
    unsigned char addr[16];
    int family;
    if (!grace__cidr_parse_ip(ip, &family, addr))
        return false;
    for (size_t i = 0; i < a->n_nets; i++)
        if (grace__cidr_contains(&a->nets[i], family, addr))
            return true;
    return false;
}

/* ---- Host names: DNS rebinding ----------------------------------------------- */

/* A page on http://evil.example:8199/ whose name its owner then points at
 * 127.0.0.1 is, to the browser, same-origin with this server: Fetch
 * Metadata and Origin pass, and the request comes from loopback. Only the
 * name tells: the browser sends "Host: evil.example:8199". So the Host must
 * be a name no outsider can point here: an IP address (nothing to
 * resolve), localhost (resolved by this machine) or one the user listed. */
static const char allowed_names[] = "allowed: IP addresses, localhost, and allowed_hosts";

/* The host of an authority "host[:port]" ("[::1]:80" -> "[::1]"); {NULL,0}
 * if it is empty or what follows the host is not ':' and digits. */
static grace_str_t authority_host(grace_str_t a)
{
    const grace_str_t none = {0};
    if (a.len == 0)
        return none;
    const char *end = a.ptr + a.len, *host_end = end;
    if (a.ptr[0] == '[') {
        const char *rb = memchr(a.ptr, ']', a.len);
        if (rb == NULL)
            return none;
        host_end = rb + 1;
    } else {
        const char *colon = memchr(a.ptr, ':', a.len);
        if (colon)
            host_end = colon;
    }
    if (host_end < end) {
        if (*host_end != ':')
            return none;
        for (const char *p = host_end + 1; p < end; p++)
            if (*p < '0' || *p > '9')
                return none;
    }
    return (grace_str_t){a.ptr, (size_t)(host_end - a.ptr)};
}

static bool names_this_server(const admin_t *a, grace_str_t authority)
{
    grace_str_t h = authority_host(authority);
    char name[256];
    unsigned char addr[16];
    if (h.len == 0 || h.len >= sizeof name)
        return false;
    memcpy(name, h.ptr, h.len);
    name[h.len] = '\0';
    if (name[0] == '[') { /* authority_host() ended it at the ']' */
        name[h.len - 1] = '\0';
        return inet_pton(AF_INET6, name + 1, addr) == 1;
    }
    /* "localhost." is the same name, fully qualified. */
    if (inet_pton(AF_INET, name, addr) == 1 || strcasecmp(name, "localhost") == 0 ||
        strcasecmp(name, "localhost.") == 0)
        return true;
    for (size_t i = 0; i < a->n_hosts; i++)
        if (strcasecmp(name, a->hosts[i]) == 0)
            return true;
    return false;
}

/* Does the request name this server? Its name is the Host header's, or an
 * absolute-form target's, which wins over Host (grace_request_host()). If
 * not, the reason is written to why. An HTTP/1.0 request without Host
 * names nothing (HTTP/1.1 without one never gets here: 400). */
static bool names_us(const admin_t *a, const grace_request_t *req, char *why, size_t cap)
{
    grace_str_t host = grace_request_host(req);
    if (host.ptr == NULL) {
        snprintf(why, cap, "no Host header, so the request does not name this server; %s",
                 allowed_names);
        return false;
    }
    if (names_this_server(a, host))
        return true;
    char shown[80];
    printable(shown, sizeof shown, host);
    snprintf(why, cap, "Host '%s' does not name this server (DNS rebinding?); %s", shown,
             allowed_names);
    return false;
}

/* The guard decides by these headers, so each must come once: with two, a
 * proxy in front may have judged one and the guard would read the other. */
static bool has_duplicate(const grace_request_t *req, char *why, size_t cap)
{
    static const char *const once[] = {"Host",    "Authorization",  "Origin",
                                       "Referer", "Sec-Fetch-Site", "Sec-Fetch-Dest"};
    const grace_header_t *h;
    size_t n = grace_request_headers(req, &h);
    for (size_t k = 0; k < sizeof once / sizeof once[0]; k++) {
        size_t seen = 0;
        for (size_t i = 0; i < n; i++)
            seen += str_is(h[i].name, once[k]);
        if (seen > 1) {
            snprintf(why, cap, "admin request refused: %s header sent %zu times (allowed once)",
                     once[k], seen);
            return true;
        }
    }
    return false;
}

/* ---- The guard (middleware on the pattern's prefix) --------------------------- */

/* Append port to "host" unless it has one ("[::1]:80" has one, "[::1]" not). */
static void add_default_port(char *host, const char *port)
{
    const char *colon = strrchr(host, ':');
    if (colon == NULL || strchr(colon, ']') != NULL)
        strcat(host, port);
}

/* The "host[:port]" of "scheme://host[:port][/...]", with the scheme's
 * default port made explicit, into out. false if url is not of that form. */
static bool url_authority(grace_str_t url, char *out, size_t cap, const char **scheme_port)
{
    const char *sep = url.ptr ? memmem(url.ptr, url.len, "://", 3) : NULL;
    if (sep == NULL)
        return false;
    size_t scheme_len = (size_t)(sep - url.ptr);
    const char *p = sep + 3, *end = url.ptr + url.len;
    const char *e = p;
    while (e < end && *e != '/' && *e != '?' && *e != '#')
        e++;
    size_t len = (size_t)(e - p);
    if (len == 0 || len + 8 >= cap)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    *scheme_port = (scheme_len == 5 && strncasecmp(url.ptr, "https", 5) == 0) ? ":443" : ":80";
    add_default_port(out, *scheme_port);
    return true;
}

/* Does the origin of url (Origin or Referer) name this very server, as the
 * Host header does? */
static bool same_origin(const grace_request_t *req, grace_str_t url)
{
    char origin[300], host[300];
    const char *default_port;
    grace_str_t h = grace_request_header(req, "Host");
    if (!url_authority(url, origin, sizeof origin, &default_port) || h.len == 0 ||
        h.len + 8 >= sizeof host)
        return false;
    memcpy(host, h.ptr, h.len);
    host[h.len] = '\0';
    add_default_port(host, default_port);
    return strcasecmp(origin, host) == 0;
}

/* Is the request cross-site or embedded? If so, the reason (naming the
 * header that told) is written to why. Requests without any of these headers
 * (curl, scripts) pass: the attack this stops needs a browser, and browsers
 * send them. */
static bool is_cross_site(const grace_request_t *req, char *why, size_t cap)
{
    grace_str_t site = grace_request_header(req, "Sec-Fetch-Site");
    grace_str_t dest = grace_request_header(req, "Sec-Fetch-Dest");
    grace_str_t origin = grace_request_header(req, "Origin");
    grace_str_t referer = grace_request_header(req, "Referer");
    const char *what = NULL, *name = NULL;
    grace_str_t value = {0};
    if (site.ptr && !str_is(site, "same-origin") && !str_is(site, "none"))
        what = "cross-site", name = "Sec-Fetch-Site", value = site;
    /* Only a page or a script of ours may ask: not an <img>, <iframe>, ... */
    else if (dest.ptr && !str_is(dest, "document") && !str_is(dest, "empty"))
        what = "embedded", name = "Sec-Fetch-Dest", value = dest;
    else if (origin.ptr && (str_is(origin, "null") || !same_origin(req, origin)))
        what = "cross-origin", name = "Origin", value = origin;
    /* A browser too old for Fetch Metadata still sends Referer with a link. */
    else if (!site.ptr && !origin.ptr && referer.ptr && !same_origin(req, referer))
        what = "cross-origin", name = "Referer", value = referer;
    if (what == NULL)
        return false;
    char shown[80];
    printable(shown, sizeof shown, value);
    snprintf(why, cap, "%s admin request refused (%s: %s)", what, name, shown);
    return true;
}

/* "Authorization: Bearer T" or ?token=T. */
static bool has_token(const admin_t *a, grace_request_t *req)
{
    grace_str_t h = grace_request_header(req, "Authorization");
    if (h.len > 7 && strncasecmp(h.ptr, "Bearer ", 7) == 0) {
        grace_str_t t = {h.ptr + 7, h.len - 7};
        while (t.len && (t.ptr[0] == ' ' || t.ptr[0] == '\t'))
            t.ptr++, t.len--;
        while (t.len && (t.ptr[t.len - 1] == ' ' || t.ptr[t.len - 1] == '\t'))
            t.len--;
        if (token_equal(a, t))
            return true;
    }
    grace_str_t q = grace_request_query(req, "token");
    return q.ptr != NULL && token_equal(a, q);
}

static void guard(grace_request_t *req, grace_response_t *res, void *user)
{
    const admin_t *a = user;
    /* For every answer under the pattern, refusals included. */
    grace_response_set_header(res, "Cache-Control", "no-store");
    grace_response_set_header(res, "X-Content-Type-Options", "nosniff");
    grace_response_set_header(res, "X-Frame-Options", "DENY");
    grace_response_set_header(res, "Referrer-Policy", "no-referrer");

    char buf[256];
    const char *why = NULL;
    if (has_duplicate(req, buf, sizeof buf) || !names_us(a, req, buf, sizeof buf) ||
        is_cross_site(req, buf, sizeof buf))
        why = buf;
    if (why == NULL && a->auth && !a->auth(req, a->auth_user))
        why = "admin access refused by the auth hook";
    if (why == NULL && !a->auth && a->token && !has_token(a, req))
        why = "admin token missing or wrong";
    if (why == NULL && a->check_network && !is_trusted_ip(a, grace_request_client_ip(req))) {
        snprintf(buf, sizeof buf, "admin access from %s refused", grace_request_client_ip(req));
        why = buf;
    }
    if (why) {
        refuse(req, res, why);
        return;
    }
    grace_next(req, res);
}

/* ---- Page -------------------------------------------------------------------- */

/* In admin_page.c (called from here only, hence not in internal.h). */
int grace__admin_page(grace_request_t *req, grace_response_t *res, const char *pattern,
                      grace_str_t token);
int grace__admin_status(grace_request_t *req, grace_response_t *res, void *user);

static int handle_page(grace_request_t *req, grace_response_t *res, void *user)
{
    const admin_t *a = user;
    /* A right token that came in the page's URL goes on to its links, so
     * that a click works; a wrong one (the request passed by its
     * Authorization header) is not repeated. */
    grace_str_t tok = a->token && !a->auth ? grace_request_query(req, "token") : (grace_str_t){0};
    if (tok.ptr && !token_equal(a, tok))
        tok = (grace_str_t){0};
    return grace__admin_page(req, res, a->pattern, tok);
}

/* ---- Actions ------------------------------------------------------------------ */

/* Is dir (resolved) the running executable's directory or an allowed one?
 * Directories are resolved now, not at enable time: one may be created (or
 * a symlink moved) by a deploy after start-up. Exact comparison: a prefix
 * would let "/opt/app" allow "/opt/app-evil". */
static bool is_allowed_dir(const admin_t *a, const char *dir)
{
    char buf[PATH_MAX], resolved[PATH_MAX];
    const char *exe = grace_executable_path();
    if (exe && exe[0] == '/' && strlen(exe) < sizeof buf) {
        strcpy(buf, exe);
        char *slash = strrchr(buf, '/');
        slash[slash == buf] = '\0'; /* "/x" -> "/" */
        if (realpath(buf, resolved) && strcmp(resolved, dir) == 0)
            return true;
    }
    for (size_t i = 0; i < a->n_dirs; i++)
        if (realpath(a->dirs[i], resolved) && strcmp(resolved, dir) == 0)
            return true;
    return false;
}

/* Refuse what someone besides root and this process's user could replace
 * between the deploy and the restart, as sudo and sshd (StrictModes) do:
 * anything group- or world-writable (sticky bit or not), or owned by
 * another user. */
static bool is_safely_owned(const char *path, char *why, size_t cap)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, cap, "cannot stat %s: %s", path, grace_strerror(-errno));
        return false;
    }
    const char *how = (st.st_mode & S_IWGRP) && (st.st_mode & S_IWOTH) ? "group- and world-writable"
                      : (st.st_mode & S_IWGRP)                         ? "group-writable"
                      : (st.st_mode & S_IWOTH)                         ? "world-writable"
                                                                       : NULL;
    if (st.st_uid != 0 && st.st_uid != geteuid())
        snprintf(why, cap, "%s is owned by uid %ld", path, (long)st.st_uid);
    else if (how)
        snprintf(why, cap, "%s is %s", path, how);
    else
        return true;
    return false;
}

/* Check newExeFilePath; on success the resolved path (symlinks followed) is
 * in out, and that is what is executed, so what was checked is what runs. */
static bool exe_allowed(const admin_t *a, grace_str_t v, char out[PATH_MAX], char *why,
                        size_t why_cap)
{
    char raw[PATH_MAX];
    if (v.len >= sizeof raw || memchr(v.ptr, '\0', v.len)) {
        snprintf(why, why_cap, "bad path");
        return false;
    }
    memcpy(raw, v.ptr, v.len);
    raw[v.len] = '\0';
    for (const char *p = raw; *p; p += strcspn(p, "/"), p += *p == '/') {
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0')) {
            snprintf(why, why_cap, "'..' in the path");
            return false;
        }
    }
    if (realpath(raw, out) == NULL) {
        snprintf(why, why_cap, "cannot resolve it: %s", grace_strerror(-errno));
        return false;
    }
    char dir[PATH_MAX];
    strcpy(dir, out);
    char *slash = strrchr(dir, '/');
    slash[slash == dir] = '\0';
    if (!is_allowed_dir(a, dir)) {
        snprintf(why, why_cap, "not in the executable's directory or an allowed directory");
        return false;
    }
    if (!grace__is_executable_file(out)) {
        snprintf(why, why_cap, "not an executable file");
        return false;
    }
    /* The path from the allowed directory down to the file: the directory
     * is the allowed one exactly, so there is nothing in between. Those
     * above it are the system's to keep safe. */
    return is_safely_owned(dir, why, why_cap) && is_safely_owned(out, why, why_cap);
}

/* Checks common to every action; false when the request was answered. */
static bool action_allowed(grace_request_t *req, grace_response_t *res)
{
    grace_str_t m = grace_request_method(req); /* methods are case-sensitive */
    if (!(m.len == 3 && memcmp(m.ptr, "GET", 3) == 0) &&
        !(m.len == 4 && memcmp(m.ptr, "POST", 4) == 0)) {
        grace_response_set_status(res, 405);
        grace_response_set_header(res, "Allow", "GET, POST");
        grace_response_writeln(res, "Method Not Allowed");
        return false;
    }
    /* A browser may fetch a link or a typed URL ahead of time (prefetch,
     * prerender): that must not shut a server down. */
    static const char *const purpose[] = {"Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"};
    for (size_t i = 0; i < sizeof purpose / sizeof purpose[0]; i++) {
        grace_str_t p = grace_request_header(req, purpose[i]);
        if (str_has(p, "prefetch") || str_has(p, "prerender") || str_has(p, "preview")) {
            refuse(req, res, "prefetch of an admin action refused");
            return false;
        }
    }
    return true;
}

static void answer_ok(grace_request_t *req, grace_response_t *res, int pid, const char *text)
{
    if (wants_json(req)) {
        if (pid > 0)
            grace_response_writef(res, "{\"ok\":true,\"pid\":%d}\n", pid);
        else
            grace_response_writef(res, "{\"ok\":true}\n");
        grace_response_set_header(res, "Content-Type", "application/json");
        return;
    }
    grace_response_writeln(res, text);
}

static int restart(grace_request_t *req, grace_response_t *res, const admin_t *a, bool reload)
{
    if (!action_allowed(req, res))
        return 0;
    grace_str_t v = grace_request_query(req, "newExeFilePath");
    char exe[PATH_MAX], why[512], msg[600];
    if (v.len > 0 && !exe_allowed(a, v, exe, why, sizeof why)) {
        snprintf(msg, sizeof msg, "newExeFilePath not allowed: %s", why);
        refuse(req, res, msg);
        return 0;
    }
    const char *path = v.len > 0 ? exe : NULL;
    grace_log("admin: %s%s%s requested from %s", reload ? "reload" : "restart", path ? " to " : "",
              path ? path : "", grace_request_client_ip(req));
    grace_restart_outcome_t out;
    int r = grace_restart_ex(path, reload ? GRACE_RESTART_GRACEFUL : GRACE_RESTART_AUTO, &out);
    if (r > 0) {
        char text[64];
        snprintf(text, sizeof text, "restarted: new pid %d", r);
        answer_ok(req, res, r, text);
    } else if (r == 0) {
        answer_ok(req, res, 0, "restarting (full restart)");
    } else {
        /* Refused for now (another restart, handed over, too many draining):
         * 503 and when to come back. A state that a retry does not change
         * (graceful off, shutting down): 409. A failed attempt: 500. */
        int status = out.retry_after_s > 0 ? 503 : r == GRACE_ESTATE ? 409 : 500;
        if (status == 503) {
            char after[16];
            snprintf(after, sizeof after, "%d", out.retry_after_s);
            grace_response_set_header(res, "Retry-After", after);
        }
        answer_error(req, res, status, reload ? "reload failed: " : "restart failed: ", out.why);
    }
    return 0;
}

static int handle_restart(grace_request_t *req, grace_response_t *res, void *user)
{
    return restart(req, res, user, false);
}

static int handle_reload(grace_request_t *req, grace_response_t *res, void *user)
{
    return restart(req, res, user, true);
}

static int handle_shutdown(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    if (!action_allowed(req, res))
        return 0;
    grace_log("admin: shutdown requested from %s", grace_request_client_ip(req));
    answer_ok(req, res, 0, "shutting down");
    /* Returns at once; the drain waits for requests in flight, this one
     * included, so the answer above is still delivered. */
    grace_shutdown_all();
    return 0;
}

/* ---- Enabling ----------------------------------------------------------------- */

/* "/debug/admin": segments of [A-Za-z0-9-._~], none empty, "." or "..". */
static bool is_good_pattern(const char *p, size_t len)
{
    if (len < 2 || p[0] != '/')
        return false;
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~";
    for (size_t i = 0; i < len;) {
        size_t seg = ++i; /* past the '/' */
        while (i < len && p[i] != '/')
            if (!strchr(ok, p[i++]))
                return false;
        size_t n = i - seg;
        if (n == 0 || (n == 1 && p[seg] == '.') || (n == 2 && p[seg] == '.' && p[seg + 1] == '.'))
            return false;
    }
    return true;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

static void admin_free(admin_t *a)
{
    if (a == NULL)
        return;
    free(a->pattern);
    free(a->token);
    free(a->nets);
    free_strings(a->dirs, a->n_dirs);
    free_strings(a->hosts, a->n_hosts);
    free(a);
}

static size_t count(const char *const *list)
{
    size_t n = 0;
    while (list && list[n])
        n++;
    return n;
}

static bool is_nonempty(const char *s)
{
    return s[0] != '\0';
}

/* An allowed_hosts entry: a DNS name, without port or brackets (IP
 * addresses are allowed anyway). */
static bool is_host_name(const char *s)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._";
    size_t len = strlen(s);
    return len > 0 && len < 254 && s[strspn(s, ok)] == '\0';
}

/* Copy the NULL-terminated list into *out (n entries, *n_out); GRACE_EINVAL
 * if is_good refuses an entry. On failure what was copied is in *out, for
 * admin_free(). */
static int copy_strings(const char *const *list, bool (*is_good)(const char *), char ***out,
                        size_t *n_out)
{
    size_t n = count(list);
    if ((*out = calloc(n + 1, sizeof **out)) == NULL)
        return GRACE_ENOMEM;
    *n_out = n;
    for (size_t i = 0; i < n; i++) {
        if (!is_good(list[i]))
            return GRACE_EINVAL;
        if (((*out)[i] = strdup(list[i])) == NULL)
            return GRACE_ENOMEM;
    }
    return 0;
}

/* Copy and check the options; NULL with *err set on failure. */
static admin_t *admin_new(const grace_admin_options_t *opt, int *err)
{
    static const char *const loopback[] = {"127.0.0.0/8", "::1/128", NULL};
    const char *pattern = opt->pattern && opt->pattern[0] ? opt->pattern : DEFAULT_PATTERN;
    size_t plen = strlen(pattern);
    while (plen > 1 && pattern[plen - 1] == '/')
        plen--;
    *err = GRACE_EBADPATTERN;
    if (!is_good_pattern(pattern, plen))
        return NULL;
    *err = GRACE_ENOMEM;
    admin_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->auth = opt->auth;
    a->auth_user = opt->auth_user;
    /* With a token or a hook, the network counts only if the caller named
     * networks too (then both must pass); without either, it is the rule. */
    bool has_secret = opt->auth || (opt->token && opt->token[0]);
    a->check_network = !has_secret || opt->trusted_networks != NULL;
    const char *const *nets = opt->trusted_networks ? opt->trusted_networks : loopback;
    a->n_nets = count(nets);
    a->pattern = strndup(pattern, plen);
    a->nets = calloc(a->n_nets + 1, sizeof *a->nets);
    if (a->pattern == NULL || a->nets == NULL)
        goto fail;
    if (opt->token && opt->token[0]) {
        a->token_len = strlen(opt->token);
        if ((a->token = strdup(opt->token)) == NULL)
            goto fail;
    }
    if ((*err = copy_strings(opt->allowed_exe_dirs, is_nonempty, &a->dirs, &a->n_dirs)) < 0 ||
        (*err = copy_strings(opt->allowed_hosts, is_host_name, &a->hosts, &a->n_hosts)) < 0)
        goto fail;
    for (size_t i = 0; i < a->n_nets; i++)
        if ((*err = grace__cidr_parse(nets[i], &a->nets[i])) < 0)
            goto fail;
    return a;
fail:
    admin_free(a);
    return NULL;
}

int grace_server_enable_admin(grace_server_t *s, const char *pattern)
{
    grace_admin_options_t opt = {.pattern = pattern};
    return grace_server_enable_admin_ex(s, &opt);
}

int grace_server_enable_admin_ex(grace_server_t *s, const grace_admin_options_t *opt)
{
    static const grace_admin_options_t defaults = {0};
    if (s == NULL)
        return GRACE_EINVAL;
    int r;
    admin_t *a = admin_new(opt ? opt : &defaults, &r);
    if (a == NULL)
        return r;
    admin_t *had = s->admin;
    if (had) {
        /* Enabled again (the program, then its configuration file): the
         * same page with the new settings; another pattern is refused. */
        if (strcmp(had->pattern, a->pattern) != 0) {
            admin_free(a);
            return GRACE_EEXIST;
        }
        admin_t old = *had;
        *had = *a;
        *a = old;
        admin_free(a);
        return 0;
    }
    s->admin = a;
    /* The guard goes in first: if a route below cannot be added, the routes
     * that were are still guarded. From here on a is owned by the server. */
    r = grace_server_use(s, a->pattern, guard, a);
    if (r < 0) {
        admin_free(a);
        return r;
    }
    static const struct {
        const char *method, *suffix;
        grace_handler_cb fn;
    } routes[] = {
        {"GET:", "", handle_page},          {"GET:", "/status", grace__admin_status},
        {"", "/restart", handle_restart},   {"", "/reload", handle_reload},
        {"", "/shutdown", handle_shutdown},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char pattern[PATH_MAX];
        snprintf(pattern, sizeof pattern, "%s%s%s", routes[i].method, a->pattern, routes[i].suffix);
        r = grace_server_bind_handler(s, pattern, routes[i].fn, a);
        if (r < 0)
            return r;
    }
    return 0;
}
