/*
 * config.c -- gf's configuration file (SPEC B7): a YAML file in the shape of
 * gf's config.yaml, read with libyaml, applied through the public API.
 *
 *   server:                       # the default server, and the process
 *     address: ":8199"            # "127.0.0.1:8100,:8200"
 *     graceful: true
 *     readTimeout: "60s"
 *     clientMaxBodySize: "8MB"
 *     s1:                         # a named server: server.s1 (or a top-level
 *       address: ":8100,:8200"    # "server.s1:" key); its values override
 *                                 # the default section's
 *
 * Server keys apply to the server they are given for; process keys
 * (graceful, gracefulTimeout, ..., pidFile, master, workers) only in the
 * default section. Durations are gf's ("60s", "500ms", "1m30s"; a bare
 * number is seconds), sizes too ("8MB", "10KB"; a bare number is bytes).
 * Every mistake -- an unknown key, a wrong type, a bad value, an unreadable
 * file -- stops the load with one line a person can act on:
 *
 *   config.yaml:12: server.readTimeout: "6O s" is not a duration (like "60s", "500ms", "1m30s")
 *
 * The whole file is read and checked before anything is applied (an
 * address the server refuses is the one mistake found while applying; the
 * program then refuses to start anyway). A restart rereads the file (the
 * new process runs main() again); a new process whose file is bad sends the
 * line to the old one, which rolls back and says it.
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

enum { MAX_SECTIONS = 32, MAX_LIST = 16 };

typedef enum { T_STR, T_BOOL, T_INT, T_DURATION, T_SIZE, T_LIST } type_t;

/* A key: its name, its type, whether only the default section may give it,
 * and where its value goes in a section. */
typedef struct {
    const char *name;
    type_t type;
    bool process;
} config_key_t;

/* What one section gives; has[] says which keys it gave. */
typedef struct {
    char name[64]; /* "" for the default section */
    bool has[48];
    unsigned long line[48]; /* where it was given, for messages */
    const char *str[48];
    int64_t num[48];
    const char *list[48][MAX_LIST + 1];
} section_t;

#define K(n, t, p) {#n, t, p}
static const config_key_t keys[] = {
    K(address, T_STR, false),          K(httpsAddr, T_STR, false),
    K(httpsCertPath, T_STR, false),    K(httpsKeyPath, T_STR, false),
    K(readTimeout, T_DURATION, false), K(writeTimeout, T_DURATION, false),
    K(idleTimeout, T_DURATION, false), K(tlsHandshakeTimeout, T_DURATION, false),
    K(maxHeaderBytes, T_SIZE, false),  K(maxHeaders, T_INT, false),
    K(clientMaxBodySize, T_SIZE, false), K(maxConnections, T_INT, false),
    K(accessLogEnabled, T_BOOL, false), K(errorLogEnabled, T_BOOL, false),
    K(serverAgent, T_STR, false),      K(readinessPattern, T_STR, false),
    K(livenessPattern, T_STR, false),  K(adminPattern, T_STR, false),
    K(adminToken, T_STR, false),       K(adminTrustedNetworks, T_LIST, false),
    K(adminAllowedExeDirs, T_LIST, false), K(adminAllowedHosts, T_LIST, false),
    K(graceful, T_BOOL, true),         K(gracefulTimeout, T_DURATION, true),
    K(gracefulShutdownTimeout, T_DURATION, true), K(maxDraining, T_INT, true),
    K(drainIdleTimeout, T_DURATION, true), K(probation, T_DURATION, true),
    K(shutdownDelay, T_DURATION, true), K(pidFile, T_STR, true),
    K(master, T_BOOL, true),           K(workers, T_INT, true),
};
#undef K
enum { N_KEYS = sizeof keys / sizeof keys[0] };
_Static_assert(N_KEYS <= 48, "section_t holds 48 keys");

static int key_index(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- Values ---------------------------------------------------------------------- */

/* gf's durations: a sequence of NUMBER UNIT (h, m, s, ms), or a bare number
 * of seconds. Milliseconds into *ms. */
static bool parse_duration(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    long long bare = strtoll(s, &end, 10);
    if (*s >= '0' && *s <= '9' && *end == '\0' && errno == 0 && bare <= INT64_MAX / 1000) {
        *ms = bare * 1000;
        return true;
    }
    int64_t total = 0;
    const char *p = s;
    if (*p == '\0')
        return false;
    while (*p) {
        if (*p < '0' || *p > '9')
            return false;
        long long n = strtoll(p, &end, 10);
        int64_t unit;
        if (strncmp(end, "ms", 2) == 0)
            unit = 1, end += 2;
        else if (*end == 'h')
            unit = 3600000, end++;
        else if (*end == 'm')
            unit = 60000, end++;
        else if (*end == 's')
            unit = 1000, end++;
        else
            return false;
        if (n > (INT64_MAX - total) / unit)
            return false;
        total += n * unit;
        p = end;
    }
    *ms = total;
    return true;
}

/* gf's sizes: a number with an optional unit B, K/KB, M/MB, G/GB (1024s,
 * any case); a bare number is bytes. */
static bool parse_size(const char *s, int64_t *bytes)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (*s < '0' || *s > '9' || errno)
        return false;
    int64_t unit = 1;
    if (*end == 'k' || *end == 'K')
        unit = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        unit = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        unit = 1024 * 1024 * 1024, end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0' || n > INT64_MAX / unit)
        return false;
    *bytes = n * unit;
    return true;
}

static bool parse_bool(const char *s, int64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return (*out = 1), true;
        if (strcasecmp(s, no[i]) == 0)
            return (*out = 0), true;
    }
    return false;
}

static bool parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno)
        return false;
    *out = n;
    return true;
}

/* ---- Reading the file ------------------------------------------------------------ */

typedef struct {
    const char *file;
    yaml_document_t doc;
    section_t sec[MAX_SECTIONS];
    int n_sec;
    char *why;
    size_t why_len;
} load_t;

static int fail(load_t *ld, const yaml_node_t *at, const char *fmt, ...) GRACE_PRINTF(3, 4);

static int fail(load_t *ld, const yaml_node_t *at, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(ld->why, ld->why_len, "%s:%lu: ", ld->file,
                                at ? (unsigned long)at->start_mark.line + 1 : 1UL);
    va_list ap;
    va_start(ap, fmt);
    if (n < ld->why_len)
        vsnprintf(ld->why + n, ld->why_len - n, fmt, ap);
    va_end(ap);
    return GRACE_ECONFIG;
}

/* The closest known key, for "did you mean"; NULL if none is close. */
static const char *closest_key(const char *name)
{
    const char *best = NULL;
    size_t best_d = 3; /* at most 2 edits */
    for (int k = 0; k < N_KEYS; k++) {
        const char *a = name, *b = keys[k].name;
        size_t la = strlen(a), lb = strlen(b);
        if (la > 64 || lb > 64)
            continue;
        size_t prev[65], cur[65];
        for (size_t j = 0; j <= lb; j++)
            prev[j] = j;
        for (size_t i = 1; i <= la; i++) {
            cur[0] = i;
            for (size_t j = 1; j <= lb; j++) {
                size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
                                            tolower((unsigned char)b[j - 1]));
                size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
                cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            }
            memcpy(prev, cur, sizeof cur);
        }
        if (prev[lb] < best_d)
            best_d = prev[lb], best = keys[k].name;
    }
    return best;
}

static const char *what_type(type_t t)
{
    switch (t) {
    case T_BOOL:
        return "true or false";
    case T_INT:
        return "a whole number";
    case T_DURATION:
        return "a duration (like \"60s\", \"500ms\", \"1m30s\")";
    case T_SIZE:
        return "a size (like \"8MB\", \"10KB\", \"512\")";
    case T_LIST:
        return "a list of strings";
    default:
        return "a string";
    }
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* One key of a section: check its type and value, keep it. */
static int take_value(load_t *ld, section_t *sec, const char *path, int k, yaml_node_t *v)
{
    const config_key_t *key = &keys[k];
    sec->has[k] = true;
    sec->line[k] = (unsigned long)v->start_mark.line + 1;
    if (key->type == T_LIST) {
        if (v->type == YAML_SCALAR_NODE) { /* a single string stands for a list of one */
            sec->list[k][0] = scalar(v);
            return 0;
        }
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(ld, v, "%s: a mapping where %s is expected", path, what_type(key->type));
        int n = 0;
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *e = yaml_document_get_node(&ld->doc, *it);
            if (e->type != YAML_SCALAR_NODE || n == MAX_LIST)
                return fail(ld, e, "%s: each item must be a string (at most %d)", path, MAX_LIST);
            sec->list[k][n++] = scalar(e);
        }
        return 0;
    }
    if (v->type != YAML_SCALAR_NODE)
        return fail(ld, v, "%s: a %s where %s is expected", path,
                    v->type == YAML_SEQUENCE_NODE ? "list" : "mapping", what_type(key->type));
    const char *s = scalar(v);
    bool ok = true;
    switch (key->type) {
    case T_BOOL:
        ok = parse_bool(s, &sec->num[k]);
        break;
    case T_INT:
        ok = parse_int(s, &sec->num[k]);
        break;
    case T_DURATION:
        ok = parse_duration(s, &sec->num[k]);
        break;
    case T_SIZE:
        ok = parse_size(s, &sec->num[k]);
        break;
    default:
        sec->str[k] = s;
    }
    if (!ok)
        return fail(ld, v, "%s: \"%s\" is not %s", path, s, what_type(key->type));
    return 0;
}

static section_t *new_section(load_t *ld, const char *name, yaml_node_t *at, int *r)
{
    for (int i = 0; i < ld->n_sec; i++) {
        if (strcmp(ld->sec[i].name, name) == 0) {
            *r = fail(ld, at, "server.%s: given twice", name);
            return NULL;
        }
    }
    if (ld->n_sec == MAX_SECTIONS || strlen(name) >= sizeof ld->sec[0].name) {
        *r = fail(ld, at, "server.%s: too many servers, or too long a name", name);
        return NULL;
    }
    section_t *s = &ld->sec[ld->n_sec++];
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

/* A server section (mapping): its keys; in the default section, a key whose
 * value is a mapping is a named server. */
static int read_section(load_t *ld, yaml_node_t *m, const char *name)
{
    int r = 0;
    section_t *sec = new_section(ld, name, m, &r);
    if (sec == NULL)
        return r;
    if (m->type != YAML_MAPPING_NODE)
        return fail(ld, m, "server%s%s: a mapping of settings is expected", name[0] ? "." : "",
                    name);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(&ld->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return fail(ld, kn, "server: a key must be a name");
        const char *k = scalar(kn);
        char path[200];
        snprintf(path, sizeof path, "server%s%s.%s", name[0] ? "." : "", name, k);
        int i = key_index(k);
        if (i < 0 && name[0] == '\0' && vn->type == YAML_MAPPING_NODE) {
            r = read_section(ld, vn, k); /* server.<name> */
        } else if (i < 0) {
            const char *near = closest_key(k);
            r = near ? fail(ld, kn, "%s: unknown key (did you mean %s?)", path, near)
                     : fail(ld, kn, "%s: unknown key", path);
        } else if (keys[i].process && name[0]) {
            r = fail(ld, kn, "%s: %s is for the whole process: give it in the server section",
                     path, k);
        } else {
            r = take_value(ld, sec, path, i, vn);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static int read_root(load_t *ld)
{
    yaml_node_t *root = yaml_document_get_root_node(&ld->doc);
    if (root == NULL)
        return 0; /* an empty file: nothing to apply */
    if (root->type != YAML_MAPPING_NODE)
        return fail(ld, root, "a mapping is expected at the top (server: ...)");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(&ld->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(&ld->doc, p->value);
        const char *k = kn->type == YAML_SCALAR_NODE ? scalar(kn) : "";
        int r;
        if (strcmp(k, "server") == 0)
            r = read_section(ld, vn, "");
        else if (strncmp(k, "server.", 7) == 0 && k[7])
            r = read_section(ld, vn, k + 7);
        else
            r = fail(ld, kn, "%s: unknown section (grace reads \"server\" and \"server.NAME\")",
                     k);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- Applying it ------------------------------------------------------------------ */

enum {
    K_ADDRESS, K_HTTPS_ADDR, K_CERT, K_KEY, K_READ_TO, K_WRITE_TO, K_IDLE_TO, K_TLS_TO,
    K_MAX_HEADER_BYTES, K_MAX_HEADERS, K_MAX_BODY, K_MAX_CONNS, K_ACCESS_LOG, K_ERROR_LOG,
    K_AGENT, K_READY, K_LIVE, K_ADMIN_PATTERN, K_ADMIN_TOKEN, K_ADMIN_NETS, K_ADMIN_DIRS,
    K_ADMIN_HOSTS, K_GRACEFUL, K_GRACEFUL_TO, K_SHUTDOWN_TO, K_MAX_DRAINING, K_DRAIN_IDLE,
    K_PROBATION, K_SHUTDOWN_DELAY, K_PID_FILE, K_MASTER, K_WORKERS,
};
_Static_assert(K_WORKERS == N_KEYS - 1, "the enum follows keys[]");

/* The value of key k for a server: its own section's, else the default's. */
static const section_t *from(const section_t *own, const section_t *def, int k)
{
    return own && own->has[k] ? own : def && def->has[k] ? def : NULL;
}

static int apply_fail(load_t *ld, const section_t *s, int k, const char *fmt, ...)
    GRACE_PRINTF(4, 5);

static int apply_fail(load_t *ld, const section_t *s, int k, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(ld->why, ld->why_len, "%s:%lu: server%s%s.%s: ", ld->file,
                                s->line[k], s->name[0] ? "." : "", s->name, keys[k].name);
    va_list ap;
    va_start(ap, fmt);
    if (n < ld->why_len)
        vsnprintf(ld->why + n, ld->why_len - n, fmt, ap);
    va_end(ap);
    return GRACE_ECONFIG;
}

/* "a,b,c" -> each address added to s (plain, or HTTPS). */
static int add_addresses(load_t *ld, grace_server_t *s, const section_t *src, int k, bool tls)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", src->str[k]);
    char *save = NULL;
    for (char *a = strtok_r(buf, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
        int r = tls ? grace_server_add_https_address(s, a) : grace_server_add_address(s, a);
        if (r < 0)
            return apply_fail(ld, src, k, "\"%s\": %s (like \":8199\" or \"127.0.0.1:8199\")",
                              a, grace_strerror(r));
    }
    return 0;
}

static void set_option(grace_server_options_t *o, int k, int64_t v)
{
    switch (k) {
    case K_READ_TO: o->read_timeout_ms = v; break;
    case K_WRITE_TO: o->write_timeout_ms = v; break;
    case K_IDLE_TO: o->idle_timeout_ms = v; break;
    case K_TLS_TO: o->tls_handshake_timeout_ms = v; break;
    case K_MAX_HEADER_BYTES: o->max_header_bytes = (size_t)v; break;
    case K_MAX_HEADERS: o->max_headers = (size_t)v; break;
    case K_MAX_BODY: o->client_max_body_size = (size_t)v; break;
    case K_MAX_CONNS: o->max_connections = (size_t)v; break;
    case K_ACCESS_LOG: o->access_log = (int)v; break;
    case K_ERROR_LOG: o->error_log = v ? 1 : -1; break;
    default: break;
    }
}

static int apply_admin(load_t *ld, grace_server_t *s, const section_t *own, const section_t *def)
{
    bool any = false;
    for (int k = K_ADMIN_PATTERN; k <= K_ADMIN_HOSTS; k++)
        any |= from(own, def, k) != NULL;
    if (!any)
        return 0;
    const section_t *p = from(own, def, K_ADMIN_PATTERN), *t = from(own, def, K_ADMIN_TOKEN);
    const section_t *n = from(own, def, K_ADMIN_NETS), *d = from(own, def, K_ADMIN_DIRS);
    const section_t *h = from(own, def, K_ADMIN_HOSTS);
    grace_admin_options_t opt = {
        .pattern = p ? p->str[K_ADMIN_PATTERN] : NULL,
        .token = t ? t->str[K_ADMIN_TOKEN] : NULL,
        .trusted_networks = n ? n->list[K_ADMIN_NETS] : NULL,
        .allowed_exe_dirs = d ? d->list[K_ADMIN_DIRS] : NULL,
        .allowed_hosts = h ? h->list[K_ADMIN_HOSTS] : NULL,
    };
    int r = grace_server_enable_admin_ex(s, &opt);
    if (r < 0) {
        const section_t *at = p ? p : t ? t : n ? n : d ? d : h;
        int k = p ? K_ADMIN_PATTERN : t ? K_ADMIN_TOKEN : n ? K_ADMIN_NETS : d ? K_ADMIN_DIRS
                                                                            : K_ADMIN_HOSTS;
        return apply_fail(ld, at, k, "the admin page cannot be set up: %s", grace_strerror(r));
    }
    return 0;
}

/* One server: addresses, HTTPS, options, probes, admin. */
static int apply_server(load_t *ld, const section_t *own, const section_t *def)
{
    grace_server_t *s = grace_server(own ? own->name : NULL);
    if (s == NULL)
        return GRACE_ENOMEM;
    const section_t *a = from(own, def, K_ADDRESS), *ha = from(own, def, K_HTTPS_ADDR);
    const section_t *c = from(own, def, K_CERT), *k = from(own, def, K_KEY);
    int r = 0;
    if (a && (r = grace_server_set_ports(s, NULL, 0)) == 0) /* the file's addresses replace */
        r = add_addresses(ld, s, a, K_ADDRESS, false);
    if (r == 0 && ha)
        r = add_addresses(ld, s, ha, K_HTTPS_ADDR, true);
    if (r == 0 && (c != NULL) != (k != NULL))
        r = apply_fail(ld, c ? c : k, c ? K_CERT : K_KEY,
                       "httpsCertPath and httpsKeyPath go together");
    if (r == 0 && c && (r = grace_server_enable_https(s, c->str[K_CERT], k->str[K_KEY])) < 0)
        r = apply_fail(ld, c, K_CERT, "%s", grace_strerror(r));
    grace_server_options_t o;
    grace_server_get_options(s, &o);
    for (int key = K_READ_TO; r == 0 && key <= K_ERROR_LOG; key++) {
        const section_t *src = from(own, def, key);
        if (src)
            set_option(&o, key, src->num[key]);
    }
    const section_t *ag = from(own, def, K_AGENT);
    if (ag)
        o.server_header = ag->str[K_AGENT];
    if (r == 0 && (r = grace_server_set_options(s, &o)) < 0)
        r = apply_fail(ld, ag ? ag : own ? own : def, ag ? K_AGENT : K_READ_TO, "%s",
                       grace_strerror(r));
    const section_t *rd = from(own, def, K_READY), *lv = from(own, def, K_LIVE);
    if (r == 0 && (rd || lv) &&
        (r = grace_server_enable_probes(s, rd ? rd->str[K_READY] : NULL,
                                        lv ? lv->str[K_LIVE] : NULL)) < 0)
        r = apply_fail(ld, rd ? rd : lv, rd ? K_READY : K_LIVE, "%s", grace_strerror(r));
    return r < 0 ? r : apply_admin(ld, s, own, def);
}

static int apply_process(load_t *ld, const section_t *d)
{
    if (d == NULL)
        return 0;
    grace_restart_options_t ro;
    grace_get_restart_options(&ro);
    if (d->has[K_GRACEFUL])
        ro.graceful = (int)d->num[K_GRACEFUL];
    if (d->has[K_GRACEFUL_TO])
        ro.graceful_timeout_ms = d->num[K_GRACEFUL_TO];
    if (d->has[K_SHUTDOWN_TO])
        ro.graceful_shutdown_timeout_ms = d->num[K_SHUTDOWN_TO];
    if (d->has[K_MAX_DRAINING])
        ro.max_draining = (int)d->num[K_MAX_DRAINING];
    if (d->has[K_DRAIN_IDLE])
        ro.drain_idle_ms = d->num[K_DRAIN_IDLE];
    if (d->has[K_PROBATION])
        ro.probation_ms = d->num[K_PROBATION];
    if (d->has[K_SHUTDOWN_DELAY])
        ro.shutdown_delay_ms = d->num[K_SHUTDOWN_DELAY];
    int r = grace_set_restart_options(&ro);
    if (r < 0)
        return apply_fail(ld, d, K_MAX_DRAINING, "a value out of range: %s", grace_strerror(r));
    if (d->has[K_PID_FILE] && (r = grace_set_pid_file(d->str[K_PID_FILE])) < 0)
        return apply_fail(ld, d, K_PID_FILE, "%s", grace_strerror(r));
    if (d->has[K_WORKERS] && !(d->has[K_MASTER] && d->num[K_MASTER]))
        return apply_fail(ld, d, K_WORKERS, "workers needs master: true");
    if (d->has[K_MASTER] && d->num[K_MASTER] &&
        (r = grace_enable_master(d->has[K_WORKERS] ? (int)d->num[K_WORKERS] : 1)) < 0)
        return apply_fail(ld, d, d->has[K_WORKERS] ? K_WORKERS : K_MASTER, "%s",
                          grace_strerror(r));
    return 0;
}

static int apply(load_t *ld)
{
    const section_t *def = NULL;
    for (int i = 0; i < ld->n_sec; i++)
        if (ld->sec[i].name[0] == '\0')
            def = &ld->sec[i];
    int r = apply_process(ld, def);
    /* The default server is configured when its section gives a server
     * setting, or when there is no named server at all. */
    bool named = ld->n_sec > (def ? 1 : 0), def_server = false;
    for (int k = 0; def && k < N_KEYS; k++)
        def_server |= def->has[k] && !keys[k].process;
    if (r == 0 && def && (def_server && !named ? true : def->has[K_ADDRESS]))
        r = apply_server(ld, NULL, def);
    for (int i = 0; r == 0 && i < ld->n_sec; i++)
        if (ld->sec[i].name[0])
            r = apply_server(ld, &ld->sec[i], def);
    return r;
}

/* ---- API --------------------------------------------------------------------------- */

static const char *find_file(const char *path)
{
    if (path && path[0])
        return path;
    const char *env = getenv("GRACE_CONFIG");
    if (env && env[0])
        return env;
    static const char *const places[] = {"config.yaml", "config/config.yaml"};
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++)
        if (access(places[i], F_OK) == 0)
            return places[i];
    return NULL;
}

static int parse_file(load_t *ld, FILE *f)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return GRACE_ENOMEM;
    yaml_parser_set_input_file(&parser, f);
    int r = 0;
    if (!yaml_parser_load(&parser, &ld->doc)) {
        snprintf(ld->why, ld->why_len, "%s:%lu: not YAML: %s", ld->file,
                 (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "syntax error");
        r = GRACE_ECONFIG;
    }
    yaml_parser_delete(&parser);
    return r;
}

int grace_config_load(const char *path, char *why, size_t why_len)
{
    static char none[1];
    if (why == NULL || why_len == 0)
        why = none, why_len = 1;
    why[0] = '\0';
    const char *file = find_file(path);
    if (file == NULL)
        return 0; /* no file: the program's own settings stand */
    load_t *ld = calloc(1, sizeof *ld);
    if (ld == NULL)
        return GRACE_ENOMEM;
    ld->file = file;
    ld->why = why;
    ld->why_len = why_len;
    int r;
    FILE *f = fopen(file, "re");
    if (f == NULL) {
        snprintf(why, why_len, "%s: cannot read it: %s", file, strerror(errno));
        r = GRACE_ECONFIG;
    } else {
        r = parse_file(ld, f);
        fclose(f);
        if (r == 0) {
            r = read_root(ld);
            if (r == 0)
                r = apply(ld);
            yaml_document_delete(&ld->doc);
        }
    }
    free(ld);
    if (r < 0)
        grace__parent_fail(why); /* a restarted process: the old one says why */
    return r < 0 ? r : 1;
}
