/*
 * admin_page.c -- what the admin interface shows (SPEC A1): the HTML page
 * (PID, executable, uptime, graceful mode, every server with its addresses,
 * the restart / reload / shutdown links and form) and the same as JSON
 * (PATTERN/status).
 *
 * Split out of admin.c only to keep that file about who may use the admin;
 * admin.c's guard has already accepted the request when this runs, and its
 * handle_page() decides which token (if any) the links carry. Everything
 * written from outside (names, paths, the token) is escaped here; the page
 * itself needs no script, so admin.c's answers and this page's
 * Content-Security-Policy allow none.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Declared here rather than in internal.h: admin.c is their only caller. */
int grace__admin_page(grace_request_t *req, grace_response_t *res, const char *pattern,
                      grace_str_t token);
int grace__admin_status(grace_request_t *req, grace_response_t *res, void *user);

/* ---- Page (HTML) ------------------------------------------------------------- */

static int write_html_n(grace_response_t *res, const char *s, size_t len)
{
    const char *end = s + len;
    while (s < end) {
        size_t n = 0;
        while (s + n < end && !memchr("&<>\"'", s[n], 5))
            n++;
        int r = n ? grace_response_write(res, s, n) : 0;
        s += n;
        if (r < 0 || s == end)
            return r;
        const char *esc = *s == '&'   ? "&amp;"
                          : *s == '<' ? "&lt;"
                          : *s == '>' ? "&gt;"
                          : *s == '"' ? "&quot;"
                                      : "&#39;";
        if ((r = grace_response_write(res, esc, strlen(esc))) < 0)
            return r;
        s++;
    }
    return 0;
}

static int write_html(grace_response_t *res, const char *s)
{
    return write_html_n(res, s, strlen(s));
}

/* Write s percent-encoded for a query value (unreserved bytes as they are). */
static void write_query_value(grace_response_t *res, grace_str_t s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c && strchr("-._~", c)))
            grace_response_write(res, &s.ptr[i], 1);
        else
            grace_response_writef(res, "%%%c%c", hex[c >> 4], hex[c & 15]);
    }
}

/* href="PATTERN/suffix[?token=T]": a token that came in the page's URL
 * goes on to its links, so that a click works. */
static void write_href(grace_response_t *res, const char *pattern, const char *suffix,
                       grace_str_t tok)
{
    grace_response_writef(res, " href=\"");
    write_html(res, pattern);
    grace_response_writef(res, "%s", suffix);
    if (tok.ptr) {
        grace_response_writef(res, "?token=");
        write_query_value(res, tok); /* no '&', '<' or '"' left to escape */
    }
    grace_response_writef(res, "\"");
}

/* "2d 3h 4m 5s", leading zero units left out. */
static void format_uptime(int64_t ms, char *out, size_t cap)
{
    const int64_t s = ms / 1000, parts[4] = {s / 86400, s / 3600 % 24, s / 60 % 60, s % 60};
    size_t len = 0;
    for (int i = 0; i < 4; i++)
        if ((parts[i] || len || i == 3) && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s%" PRId64 "%c", len ? " " : "",
                                    parts[i], "dhms"[i]);
}

typedef struct {
    grace_response_t *res;
    const grace_server_t *self;
} row_t;

static void page_server_row(grace_server_t *s, void *user)
{
    row_t *e = user;
    grace_response_t *res = e->res;
    grace_response_writef(res, "<tr><td>");
    write_html(res, grace_server_name(s));
    grace_response_writef(res, "%s</td><td>", s == e->self ? " <small>(this one)</small>" : "");
    for (size_t i = 0; i < grace_server_address_count(s); i++) {
        grace_response_writef(res, "<code>");
        write_html(res, grace_server_address(s, i));
        grace_response_writef(res, "</code> ");
    }
    grace_response_writef(res, "</td><td>%s</td><td>%ld</td></tr>\n",
                          grace_server_is_running(s) ? "running" : "stopped",
                          grace_server_inflight(s));
}

static const char page_style[] =
    "body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:54em;padding:0 1em;"
    "color:#222;background:#f6f7f9}h1{font-size:1.4em;margin:0 0 .8em}h1 small{color:#777;"
    "font-weight:normal}section{background:#fff;border:1px solid #dde1e6;border-radius:6px;"
    "padding:1em 1.2em;margin:0 0 1em}table{border-collapse:collapse;width:100%}"
    "th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #eceef1;vertical-align:top}"
    "th{color:#555;font-weight:600;width:11em}code{background:#eef1f4;padding:0 .3em;"
    "border-radius:3px}nav a{display:inline-block;margin:0 .5em .4em 0;padding:.35em 1em;"
    "border-radius:4px;background:#2563eb;color:#fff;text-decoration:none}"
    "nav a.stop{background:#c62828}nav a:hover{opacity:.85}form{margin-top:.6em}"
    "input[type=text]{width:26em;max-width:70%;padding:.3em}button{padding:.35em 1em}"
    "p.note{color:#666;font-size:.9em;margin:.4em 0 0}";

/* The head, the process table and the servers table. */
static void write_process(grace_request_t *req, grace_response_t *res)
{
    grace_restart_options_t ro;
    grace_get_restart_options(&ro);
    char uptime[64];
    format_uptime(grace_uptime_ms(), uptime, sizeof uptime);
    const char *exe = grace_executable_path();

    grace_response_writef(res,
                          "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                          "<meta name=\"viewport\" content=\"width=device-width\">\n"
                          "<title>grace admin &middot; pid %ld</title>\n<style>%s</style>\n"
                          "</head>\n<body>\n<h1>grace admin <small>",
                          (long)getpid(), page_style);
    write_html(res, grace_server_name(grace_request_server(req)));
    grace_response_writef(res,
                          "</small></h1>\n<section>\n<table>\n"
                          "<tr><th>PID</th><td id=\"pid\">%ld</td></tr>\n"
                          "<tr><th>Executable</th><td><code id=\"exe\">",
                          (long)getpid());
    write_html(res, exe ? exe : "");
    grace_response_writef(res, "</code></td></tr>\n<tr><th>Uptime</th><td>");
    write_html(res, uptime);
    grace_response_writef(res,
                          "</td></tr>\n<tr><th>Graceful restart</th><td>%s</td></tr>\n"
                          "<tr><th>grace</th><td>%s</td></tr>\n</table>\n</section>\n"
                          "<section>\n<table>\n<tr><th>Server</th><th>Addresses</th>"
                          "<th>State</th><th>In flight</th></tr>\n",
                          ro.graceful ? "on" : "off (a restart is a full restart)",
                          grace_version_string());
    row_t e = {res, grace_request_server(req)};
    grace_servers_foreach(page_server_row, &e);
    grace_response_writef(res, "</table>\n</section>\n");
}

/* The whole page. token: a valid token that came in the page's URL, carried
 * on to the links and the form; {NULL, 0} for none. */
int grace__admin_page(grace_request_t *req, grace_response_t *res, const char *pattern,
                      grace_str_t token)
{
    grace_response_set_header(res, "Content-Type", "text/html; charset=utf-8");
    grace_response_set_header(res, "Content-Security-Policy",
                              "default-src 'none'; style-src 'unsafe-inline'; "
                              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    write_process(req, res);
    grace_response_writef(res, "<section>\n<nav>\n");
    static const char *const actions[] = {"restart", "reload", "shutdown"};
    for (size_t i = 0; i < 3; i++) {
        char suffix[16];
        snprintf(suffix, sizeof suffix, "/%s", actions[i]);
        grace_response_writef(res, "<a%s", i == 2 ? " class=\"stop\"" : "");
        write_href(res, pattern, suffix, token);
        grace_response_writef(res, ">%s</a>\n", actions[i]);
    }
    grace_response_writef(res, "</nav>\n<form method=\"get\" action=\"");
    write_html(res, pattern);
    grace_response_writef(res, "/restart\">\n<label>Restart with executable "
                               "<input type=\"text\" name=\"newExeFilePath\" "
                               "placeholder=\"/path/to/new/version\"></label>\n");
    if (token.ptr) {
        grace_response_writef(res, "<input type=\"hidden\" name=\"token\" value=\"");
        write_html_n(res, token.ptr, token.len);
        grace_response_writef(res, "\">\n");
    }
    grace_response_writef(res, "<button type=\"submit\">restart</button>\n</form>\n"
                               "<p class=\"note\">restart and reload restart every server of "
                               "this process; shutdown stops them all. The executable must be "
                               "in the running executable's directory or an allowed one, and "
                               "writable only by its owner (root or this process's user).</p>\n"
                               "</section>\n<p class=\"note\">As JSON: <a");
    write_href(res, pattern, "/status", token);
    grace_response_writef(res, ">status</a></p>\n</body>\n</html>\n");
    return 0;
}

/* ---- Status (JSON) ----------------------------------------------------------- */

typedef struct {
    grace_response_t *res;
    int n;
} each_t;

/* Write before (JSON text) and then s as a JSON string (NULL as ""). */
static void write_json(grace_response_t *res, const char *before, const char *s)
{
    grace_response_writef(res, "%s", before);
    grace_response_write_json_string(res, s ? s : "", s ? strlen(s) : 0);
}

static void status_server(grace_server_t *s, void *user)
{
    each_t *e = user;
    write_json(e->res, e->n++ ? ",{\"name\":" : "{\"name\":", grace_server_name(s));
    grace_response_writef(e->res, ",\"running\":%s,\"addresses\":[",
                          grace_server_is_running(s) ? "true" : "false");
    for (size_t i = 0; i < grace_server_address_count(s); i++)
        write_json(e->res, i ? "," : "", grace_server_address(s, i));
    grace_response_writef(e->res, "],\"inflight\":%ld}", grace_server_inflight(s));
}

/* PATTERN/status: the page's facts as JSON, for programs. */
int grace__admin_status(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    grace_restart_options_t ro;
    grace_get_restart_options(&ro);
    grace_response_set_header(res, "Content-Type", "application/json");
    grace_response_writef(res, "{\"pid\":%ld", (long)getpid());
    if (grace__master_pid() > 0) /* master mode: the PID to signal */
        grace_response_writef(res, ",\"master_pid\":%ld", (long)grace__master_pid());
    write_json(res, ",\"executable\":", grace_executable_path());
    grace_response_writef(res, ",\"uptime_ms\":%" PRId64 ",\"graceful\":%s,\"version\":\"%s\"",
                          grace_uptime_ms(), ro.graceful ? "true" : "false",
                          grace_version_string());
    write_json(res, ",\"server\":", grace_server_name(grace_request_server(req)));
    grace_response_writef(res, ",\"servers\":[");
    each_t e = {res, 0};
    grace_servers_foreach(status_server, &e);
    return grace_response_writef(res, "]}\n");
}
