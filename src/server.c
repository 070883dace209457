/*
 * server.c -- named servers (process-wide singletons), their configuration,
 * their listen addresses and their start (SPEC S1, S2, S4).
 *
 * Servers are created on first use by name and never freed. Configuration
 * (ports, routes, middleware, options) happens before start and is then
 * read-only, so every layer reads it without locks. Starting a server opens
 * (or takes over, after a restart) its listening sockets, hands them to the
 * engine and tells lifecycle.c, which owns the rest of its life (drain,
 * stop, grace_wait). reg.mu guards the server list and the global
 * middleware.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The process's servers and global middleware: a deliberate singleton. */
static struct {
    pthread_mutex_t mu;
    grace_server_t *servers; /* newest first; only grows */
    grace__middleware_t global_mw[GRACE__MAX_MIDDLEWARE];
    size_t n_global_mw;
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const grace_server_options_t default_options = {
    .max_header_bytes = 10240,
    .max_headers = 100,
    .client_max_body_size = 8 * 1024 * 1024,
    .read_timeout_ms = 60000,
    .idle_timeout_ms = 60000,
    .write_timeout_ms = 60000,
    .tls_handshake_timeout_ms = 10000,
    .access_log = 0,
    .server_header = "grace",
};

grace_server_t *grace_server(const char *name)
{
    if (name == NULL || name[0] == '\0')
        name = "default";
    pthread_mutex_lock(&reg.mu);
    grace_server_t *s = reg.servers;
    for (; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            goto out;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto out;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->opt = default_options;
    s->server_header = strdup(default_options.server_header);
    s->router = grace__router_new();
    if (s->router == NULL || s->server_header == NULL) {
        grace__router_free(s->router);
        free(s->server_header);
        free(s);
        s = NULL;
        goto out;
    }
    atomic_init(&s->state, GRACE__SRV_NEW);
    s->next = reg.servers;
    reg.servers = s;
out:
    pthread_mutex_unlock(&reg.mu);
    return s;
}

const char *grace_server_name(const grace_server_t *s)
{
    return s->name;
}

static bool is_configurable(const grace_server_t *s)
{
    return atomic_load(&s->state) == GRACE__SRV_NEW;
}

/* Parse "8199", ":8199", "1.2.3.4:8199", "[::1]:8199" into l. */
static int parse_address(const char *spec, grace__listener_t *l)
{
    char host[64] = "";
    const char *port_s;
    size_t len = strlen(spec);
    if (len == 0 || len >= sizeof l->spec)
        return GRACE_EBADADDR;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof host)
            return GRACE_EBADADDR;
        memcpy(host, spec + 1, (size_t)(end - spec - 1));
        host[end - spec - 1] = '\0';
        port_s = end + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (colon == NULL) {
            port_s = spec;
        } else {
            if ((size_t)(colon - spec) >= sizeof host || memchr(spec, ':', (size_t)(colon - spec)))
                return GRACE_EBADADDR; /* bare IPv6 needs brackets */
            memcpy(host, spec, (size_t)(colon - spec));
            host[colon - spec] = '\0';
            port_s = colon + 1;
        }
    }
    char *endp;
    errno = 0;
    long port = strtol(port_s, &endp, 10);
    if (*port_s == '\0' || *endp != '\0' || errno || port < 0 || port > 65535)
        return GRACE_EBADADDR;
    memset(l, 0, sizeof *l);
    snprintf(l->spec, sizeof l->spec, "%s", spec);
    l->kind = GRACE__EV_LISTENER;
    l->fd = -1;
    l->port = (int)port;
    if (host[0] == '\0') {
        l->all_addrs = true;
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->addr;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        l->addr_len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        l->addr_len = sizeof *a6;
    } else {
        return GRACE_EBADADDR;
    }
    return 0;
}

static int add_address(grace_server_t *s, const char *addr, bool tls)
{
    if (s == NULL || addr == NULL)
        return GRACE_EINVAL;
    if (!is_configurable(s))
        return GRACE_ESTATE;
    if (s->n_listeners == GRACE__MAX_LISTENERS)
        return GRACE_ENOMEM;
    grace__listener_t l;
    int r = parse_address(addr, &l);
    if (r < 0)
        return r;
    l.server = s;
    l.tls = tls;
    s->listeners[s->n_listeners++] = l;
    return 0;
}

int grace_server_add_address(grace_server_t *s, const char *addr)
{
    return add_address(s, addr, false);
}

int grace_server_add_https_address(grace_server_t *s, const char *addr)
{
    return add_address(s, addr, true);
}

int grace_server_set_https_ports(grace_server_t *s, const int *ports, size_t n_ports)
{
    if (s == NULL || (ports == NULL && n_ports > 0))
        return GRACE_EINVAL;
    for (size_t i = 0; i < n_ports; i++) {
        char spec[16];
        if (ports[i] < 0 || ports[i] > 65535)
            return GRACE_EINVAL;
        snprintf(spec, sizeof spec, ":%d", ports[i]);
        int r = add_address(s, spec, true);
        if (r < 0)
            return r;
    }
    return 0;
}

int grace_server_enable_https(grace_server_t *s, const char *cert_path, const char *key_path)
{
    if (s == NULL || cert_path == NULL || key_path == NULL || !*cert_path || !*key_path)
        return GRACE_EINVAL;
    if (!is_configurable(s))
        return GRACE_ESTATE;
    char *c = strdup(cert_path), *k = strdup(key_path);
    if (c == NULL || k == NULL) {
        free(c);
        free(k);
        return GRACE_ENOMEM;
    }
    free(s->cert_path);
    free(s->key_path);
    s->cert_path = c;
    s->key_path = k;
    return 0;
}

/* Build the TLS context if the server has HTTPS addresses. Logs why it
 * cannot, once. */
static int prepare_tls(grace_server_t *s)
{
    bool any_tls = false;
    for (size_t i = 0; i < s->n_listeners; i++)
        any_tls |= s->listeners[i].tls;
    if (s->cert_path && !any_tls) {
        /* gf: EnableHTTPS + SetPort(8200) serves HTTPS on 8200. */
        for (size_t i = 0; i < s->n_listeners; i++)
            s->listeners[i].tls = true;
        any_tls = true;
    }
    if (!any_tls)
        return 0;
    if (s->cert_path == NULL) {
        grace_log("server %s has HTTPS addresses but no certificate: call "
                  "grace_server_enable_https() first",
                  s->name);
        return GRACE_ETLS;
    }
    char why[1024];
    SSL_CTX *ctx = NULL;
    int r = grace__tls_ctx_new(s->cert_path, s->key_path, &ctx, why, sizeof why);
    if (r < 0) {
        grace_log("https server %s cannot start: %s", s->name, why);
        return r;
    }
    grace__tls_ctx_free(s->tls_ctx);
    s->tls_ctx = ctx;
    return 0;
}

int grace_server_set_ports(grace_server_t *s, const int *ports, size_t n_ports)
{
    if (s == NULL || (ports == NULL && n_ports > 0) || n_ports > GRACE__MAX_LISTENERS)
        return GRACE_EINVAL;
    if (!is_configurable(s))
        return GRACE_ESTATE;
    for (size_t i = 0; i < n_ports; i++)
        if (ports[i] < 0 || ports[i] > 65535)
            return GRACE_EINVAL;
    /* Replace the plain addresses; HTTPS ones stay. */
    size_t k = 0;
    for (size_t i = 0; i < s->n_listeners; i++)
        if (s->listeners[i].tls)
            s->listeners[k++] = s->listeners[i];
    s->n_listeners = k;
    for (size_t i = 0; i < n_ports; i++) {
        char spec[16];
        snprintf(spec, sizeof spec, ":%d", ports[i]);
        int r = grace_server_add_address(s, spec);
        if (r < 0)
            return r;
    }
    return 0;
}

int grace_server_set_options(grace_server_t *s, const grace_server_options_t *o)
{
    if (s == NULL || o == NULL)
        return GRACE_EINVAL;
    if (!is_configurable(s))
        return GRACE_ESTATE;
    if (o->read_timeout_ms < 0 || o->idle_timeout_ms < 0 || o->write_timeout_ms < 0 ||
        o->tls_handshake_timeout_ms < 0)
        return GRACE_EINVAL;
    grace_server_options_t n = *o;
    const grace_server_options_t *d = &default_options;
    if (!n.max_header_bytes)
        n.max_header_bytes = d->max_header_bytes;
    if (!n.max_headers)
        n.max_headers = d->max_headers;
    if (!n.client_max_body_size)
        n.client_max_body_size = d->client_max_body_size;
    if (!n.read_timeout_ms)
        n.read_timeout_ms = d->read_timeout_ms;
    if (!n.idle_timeout_ms)
        n.idle_timeout_ms = d->idle_timeout_ms;
    if (!n.write_timeout_ms)
        n.write_timeout_ms = d->write_timeout_ms;
    if (!n.tls_handshake_timeout_ms)
        n.tls_handshake_timeout_ms = d->tls_handshake_timeout_ms;
    const char *sh = o->server_header ? o->server_header : d->server_header;
    if (strpbrk(sh, "\r\n"))
        return GRACE_EINVAL;
    char *copy = strdup(sh);
    if (copy == NULL)
        return GRACE_ENOMEM;
    free(s->server_header);
    s->server_header = copy;
    n.server_header = copy;
    s->opt = n;
    return 0;
}

void grace_server_get_options(const grace_server_t *s, grace_server_options_t *out)
{
    *out = s->opt;
    out->server_header = s->server_header;
}

int grace_server_bind_handler(grace_server_t *s, const char *pattern, grace_handler_cb fn,
                              void *user)
{
    if (s == NULL || pattern == NULL || fn == NULL)
        return GRACE_EINVAL;
    if (!is_configurable(s))
        return GRACE_ESTATE;
    return grace__router_add(s->router, pattern, fn, user);
}

static int add_middleware(grace__middleware_t *list, size_t *n, const char *prefix,
                          grace_middleware_cb fn, void *user)
{
    if (fn == NULL)
        return GRACE_EINVAL;
    if (*n == GRACE__MAX_MIDDLEWARE)
        return GRACE_ENOMEM;
    grace__middleware_t m = {NULL, 0, fn, user};
    if (prefix && strcmp(prefix, "/") != 0) {
        if (prefix[0] != '/')
            return GRACE_EINVAL;
        size_t len = strlen(prefix);
        while (len > 1 && prefix[len - 1] == '/')
            len--; /* "/admin/" covers the same paths as "/admin" */
        char *copy = strndup(prefix, len);
        if (copy == NULL)
            return GRACE_ENOMEM;
        m.prefix = copy;
        m.prefix_len = len;
    }
    list[(*n)++] = m;
    return 0;
}

int grace_server_use(grace_server_t *s, const char *prefix, grace_middleware_cb fn, void *user)
{
    if (s == NULL)
        return GRACE_EINVAL;
    if (!is_configurable(s))
        return GRACE_ESTATE;
    return add_middleware(s->mw, &s->n_mw, prefix, fn, user);
}

int grace_use_global(grace_middleware_cb fn, void *user)
{
    pthread_mutex_lock(&reg.mu);
    int r = add_middleware(reg.global_mw, &reg.n_global_mw, NULL, fn, user);
    pthread_mutex_unlock(&reg.mu);
    return r;
}

/* ---- Listening ------------------------------------------------------------ */

/* Text for logs: ":8199" for every address, "127.0.0.1:8199", "[::1]:8199". */
static void show_address(grace__listener_t *l)
{
    if (l->all_addrs) {
        snprintf(l->shown, sizeof l->shown, ":%d", l->port);
        return;
    }
    char host[INET6_ADDRSTRLEN];
    const void *a = l->addr.ss_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)&l->addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)&l->addr)->sin_addr;
    inet_ntop(l->addr.ss_family, a, host, sizeof host);
    snprintf(l->shown, sizeof l->shown, l->addr.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
             l->port);
}

static void read_bound_port(grace__listener_t *l, int fd)
{
    struct sockaddr_storage got;
    socklen_t got_len = sizeof got;
    if (getsockname(fd, (struct sockaddr *)&got, &got_len) == 0)
        l->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                  : ((struct sockaddr_in *)&got)->sin_port);
}

static int open_listener(grace__listener_t *l)
{
    int fd = -1, r, one = 1;
    /* After a graceful restart the socket is already open: the old process
     * handed it over, with its queue of connections. */
    fd = grace__inherit_take(l->server->name, l->spec);
    l->inherited = fd >= 0;
    if (fd < 0)
        fd = grace__activated_take(l, l->server->name); /* systemd's, if it passed one */
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        read_bound_port(l, fd);
        show_address(l);
        l->fd = fd;
        return 0;
    }
    if (l->all_addrs) {
        /* ":port" means every address: one dual-stack IPv6 socket, or IPv4
         * alone on hosts without IPv6. */
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l->addr;
        memset(&l->addr, 0, sizeof l->addr);
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons((uint16_t)l->port);
        l->addr_len = sizeof *a6;
        fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            int zero = 0;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        } else {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&l->addr;
            memset(&l->addr, 0, sizeof l->addr);
            a4->sin_family = AF_INET;
            a4->sin_addr.s_addr = htonl(INADDR_ANY);
            a4->sin_port = htons((uint16_t)l->port);
            l->addr_len = sizeof *a4;
        }
    }
    if (fd < 0)
        fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* SO_REUSEADDR only lets us bind over TIME_WAIT leftovers; grace never
     * uses SO_REUSEPORT (a closing member of a reuseport group resets the
     * connections queued on it). */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&l->addr, l->addr_len) < 0 || listen(fd, 4096) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    read_bound_port(l, fd);
    show_address(l);
    l->fd = fd;
    grace__master_adopt(l->server->name, l->spec, fd);
    return 0;
}

/* max_connections when the program sets none: 3/4 of the descriptors the
 * process may open, keeping at most 1024 for everything else. */
static size_t default_max_connections(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1 << 20;
    size_t n = (size_t)rl.rlim_cur;
    size_t keep = n / 4 < 1024 ? n / 4 : 1024;
    return n - keep > 1 ? n - keep : 1;
}

int grace_server_start(grace_server_t *s)
{
    if (s == NULL)
        return GRACE_EINVAL;
    if (s->n_listeners == 0)
        return GRACE_ENOLISTEN;
    int expected = GRACE__SRV_NEW;
    if (!atomic_compare_exchange_strong(&s->state, &expected, GRACE__SRV_RUNNING))
        return GRACE_ESTATE;
    if (s->opt.max_connections == 0)
        s->opt.max_connections = default_max_connections();
    int r = grace__lifecycle_start(); /* (once: the engine, the signals) */
    if (r == 0)
        r = prepare_tls(s);
    size_t opened = 0;
    for (; r == 0 && opened < s->n_listeners; opened++)
        r = open_listener(&s->listeners[opened]);
    pthread_mutex_lock(&reg.mu);
    s->global_mw = reg.global_mw; /* fixed from now on: read unlocked */
    s->n_global_mw = reg.n_global_mw;
    pthread_mutex_unlock(&reg.mu);
    /* A master serves nothing itself: its children take the sockets. */
    if (r == 0 && grace__role() != GRACE__ROLE_MASTER)
        r = grace__engine_add_server(s);
    if (r < 0) {
        /* Listen on all addresses or none: a half-started server would hide
         * the error behind a port that works. */
        for (size_t i = 0; i < opened; i++) {
            if (s->listeners[i].fd >= 0) {
                close(s->listeners[i].fd);
                s->listeners[i].fd = -1;
            }
        }
        atomic_store(&s->state, GRACE__SRV_NEW);
        return r;
    }
    grace__lifecycle_started(s);
    for (size_t i = 0; i < s->n_listeners; i++)
        grace_log("%s server %s listening on [%s]%s", s->listeners[i].tls ? "https" : "http",
                  s->listeners[i].inherited ? "reloaded" : "started", s->listeners[i].shown,
                  grace__is_activated(s->listeners[i].fd) ? " (socket from systemd)" : "");
    return 0;
}

int grace_server_run(grace_server_t *s)
{
    int r = grace_server_start(s);
    if (r < 0)
        return r;
    grace_wait();
    return 0;
}

size_t grace_server_ports(const grace_server_t *s, int *ports, size_t cap)
{
    for (size_t i = 0; i < s->n_listeners && i < cap; i++)
        ports[i] = s->listeners[i].port;
    return s->n_listeners;
}

bool grace_server_is_running(const grace_server_t *s)
{
    int st = atomic_load(&s->state);
    return st == GRACE__SRV_RUNNING || st == GRACE__SRV_DRAINING;
}

/* ---- Facts for status pages ---------------------------------------------- */

long grace_server_inflight(const grace_server_t *s)
{
    return atomic_load_explicit(&s->n_inflight, memory_order_relaxed);
}

size_t grace_server_address_count(const grace_server_t *s)
{
    return s->n_listeners;
}

const char *grace_server_address(const grace_server_t *s, size_t i)
{
    if (i >= s->n_listeners)
        return NULL;
    const grace__listener_t *l = &s->listeners[i];
    return l->shown[0] ? l->shown : l->spec;
}

const char *grace_server_address_scheme(const grace_server_t *s, size_t i)
{
    if (i >= s->n_listeners)
        return NULL;
    return s->listeners[i].tls ? "https" : "http";
}

void grace_servers_foreach(void (*fn)(grace_server_t *s, void *user), void *user)
{
    /* Collect under the lock, call outside it: fn may call grace_server(). */
    grace_server_t *list[256];
    size_t n = 0;
    pthread_mutex_lock(&reg.mu);
    for (grace_server_t *s = reg.servers; s && n < 256; s = s->next)
        list[n++] = s;
    pthread_mutex_unlock(&reg.mu);
    while (n > 0) /* the list is newest first */
        fn(list[--n], user);
}
