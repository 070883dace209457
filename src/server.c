/*
 * server.c -- named servers (process-wide singletons), their listen
 * addresses, start / run / wait / shutdown, and signal handling.
 *
 * SPEC S1, S2, S4, G3, G7 (shutdown signals). Servers are created on first
 * use by name and never freed. Configuration (ports, routes, middleware,
 * options) happens before start and is then read-only, so workers read it
 * without locks. Server state moves NEW -> RUNNING -> DRAINING -> STOPPED;
 * grace__proc.mu guards the server list and the running count that
 * grace_wait() sleeps on. Signals arrive through a self-pipe: the handler
 * only writes the signal number; a dedicated thread reads it and acts, so
 * nothing unsafe runs in signal context, whichever thread took the signal.
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

grace__proc_t grace__proc = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .drain_idle_ms = 1000,
};

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
    pthread_mutex_lock(&grace__proc.mu);
    grace_server_t *s = grace__proc.servers;
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
    s->next = grace__proc.servers;
    grace__proc.servers = s;
out:
    pthread_mutex_unlock(&grace__proc.mu);
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
    pthread_mutex_lock(&grace__proc.mu);
    int r = add_middleware(grace__proc.global_mw, &grace__proc.n_global_mw, NULL, fn, user);
    pthread_mutex_unlock(&grace__proc.mu);
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
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        l->inherited = true;
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
    return 0;
}

static int start_signals(void);

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
    int r = grace__engine_start();
    if (r == 0)
        r = start_signals();
    if (r == 0)
        r = prepare_tls(s);
    size_t opened = 0;
    for (; r == 0 && opened < s->n_listeners; opened++)
        r = open_listener(&s->listeners[opened]);
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
    pthread_mutex_lock(&grace__proc.mu);
    grace__proc.n_running++;
    pthread_mutex_unlock(&grace__proc.mu);
    for (size_t i = 0; i < s->n_listeners; i++) {
        grace__engine_add_listener(&s->listeners[i]);
        grace_log("%s server %s listening on [%s]", s->listeners[i].tls ? "https" : "http",
                  s->listeners[i].inherited ? "reloaded" : "started", s->listeners[i].shown);
    }
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

int grace_server_shutdown(grace_server_t *s)
{
    if (s == NULL)
        return GRACE_EINVAL;
    int expected = GRACE__SRV_RUNNING;
    if (!atomic_compare_exchange_strong(&s->state, &expected, GRACE__SRV_DRAINING))
        return expected == GRACE__SRV_NEW ? GRACE_ESTATE : 0; /* already going down */
    atomic_store(&s->drain_start_ms, grace__now_ms());
    grace__engine_drain_server(s);
    return 0;
}

void grace__drain_all(void)
{
    /* The list only grows, at its head, so walking it unlocked is safe. */
    pthread_mutex_lock(&grace__proc.mu);
    grace_server_t *head = grace__proc.servers;
    pthread_mutex_unlock(&grace__proc.mu);
    for (grace_server_t *s = head; s; s = s->next)
        grace_server_shutdown(s);
}

void grace_shutdown_all(void)
{
    if (grace__is_draining()) {
        /* Asked again while draining: the operator wants it over now. */
        grace__force_stop("shutdown requested again while draining");
        return;
    }
    pthread_mutex_lock(&grace__proc.mu);
    bool any = false;
    for (grace_server_t *s = grace__proc.servers; s; s = s->next)
        any |= atomic_load(&s->state) == GRACE__SRV_RUNNING;
    pthread_mutex_unlock(&grace__proc.mu);
    if (any)
        grace_log("server shutting down");
    grace__drain_begin();
    grace__drain_all();
}

/* A server is down when its listeners are closed in every loop and its last
 * connection is gone; both paths call here and the state CAS picks one. */
static void maybe_stopped(grace_server_t *s)
{
    if (atomic_load(&s->state) != GRACE__SRV_DRAINING || !atomic_load(&s->listeners_closed) ||
        atomic_load(&s->n_conns) != 0)
        return;
    int expected = GRACE__SRV_DRAINING;
    if (!atomic_compare_exchange_strong(&s->state, &expected, GRACE__SRV_STOPPED))
        return;
    pthread_mutex_lock(&grace__proc.mu);
    bool last = --grace__proc.n_running == 0;
    if (last)
        grace_log("all servers shutdown");
    pthread_cond_broadcast(&grace__proc.cond);
    pthread_mutex_unlock(&grace__proc.mu);
}

void grace__server_conn_closed(grace_server_t *s)
{
    maybe_stopped(s);
}

void grace__server_listeners_released(grace_server_t *s)
{
    int64_t probation = atomic_load(&grace__proc.probation_until_ms);
    if (probation && grace__now_ms() < probation)
        return; /* grace__servers_probation_over() comes back */
    pthread_mutex_lock(&grace__proc.mu); /* against grace__servers_undrain */
    bool close_now = atomic_load(&s->all_released) && !atomic_load(&s->listeners_closed) &&
                     atomic_load(&s->state) == GRACE__SRV_DRAINING;
    if (close_now) {
        for (size_t i = 0; i < s->n_listeners; i++) {
            close(s->listeners[i].fd);
            s->listeners[i].fd = -1;
        }
        atomic_store(&s->listeners_closed, true);
    }
    pthread_mutex_unlock(&grace__proc.mu);
    maybe_stopped(s);
}

void grace__servers_probation_over(void)
{
    pthread_mutex_lock(&grace__proc.mu);
    grace_server_t *head = grace__proc.servers;
    pthread_mutex_unlock(&grace__proc.mu);
    for (grace_server_t *s = head; s; s = s->next)
        if (atomic_load(&s->all_released))
            grace__server_listeners_released(s);
}

int grace__servers_undrain(void)
{
    int n = 0;
    pthread_mutex_lock(&grace__proc.mu);
    for (grace_server_t *s = grace__proc.servers; s; s = s->next) {
        int expected = GRACE__SRV_DRAINING;
        if (atomic_load(&s->listeners_closed) ||
            !atomic_compare_exchange_strong(&s->state, &expected, GRACE__SRV_RUNNING))
            continue;
        atomic_store(&s->all_released, false);
        atomic_store(&s->drain_start_ms, 0);
        n++;
    }
    pthread_mutex_unlock(&grace__proc.mu);
    grace__engine_drain_server(NULL); /* every loop syncs its listeners */
    return n;
}

void grace__force_stop(const char *why)
{
    pthread_mutex_lock(&grace__proc.mu);
    long conns = 0;
    for (grace_server_t *s = grace__proc.servers; s; s = s->next)
        conns += atomic_load(&s->n_conns);
    grace_log("%s: closing %ld remaining connections", why, conns);
    for (grace_server_t *s = grace__proc.servers; s; s = s->next) {
        int st = atomic_load(&s->state);
        while ((st == GRACE__SRV_RUNNING || st == GRACE__SRV_DRAINING) &&
               !atomic_compare_exchange_weak(&s->state, &st, GRACE__SRV_STOPPED))
            ;
        if (st == GRACE__SRV_RUNNING || st == GRACE__SRV_DRAINING)
            grace__proc.n_running--;
    }
    if (grace__proc.n_running == 0)
        grace_log("all servers shutdown");
    pthread_cond_broadcast(&grace__proc.cond);
    pthread_mutex_unlock(&grace__proc.mu);
}

void grace__wait_stopped(void)
{
    pthread_mutex_lock(&grace__proc.mu);
    while (grace__proc.n_running > 0)
        pthread_cond_wait(&grace__proc.cond, &grace__proc.mu);
    pthread_mutex_unlock(&grace__proc.mu);
}

void grace_wait(void)
{
    /* Waiting means every server the program wanted is started: tell the
     * process that restarted us (if any) that we serve. */
    grace_ready();
    pthread_mutex_lock(&grace__proc.mu);
    /* A full restart re-executes the program from a grace thread once the
     * drain ends; returning here would let main() exit first. */
    while (grace__proc.n_running > 0 || grace__full_restart_pending())
        pthread_cond_wait(&grace__proc.cond, &grace__proc.mu);
    pthread_mutex_unlock(&grace__proc.mu);
}

/* ---- Signals -------------------------------------------------------------- */

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(signal_pipe[1], &b, 1); /* full pipe: the signal is already pending */
    (void)w;
    errno = saved;
}

static void *signal_thread(void *arg)
{
    (void)arg;
    for (;;) {
        unsigned char b;
        ssize_t n = read(signal_pipe[0], &b, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        switch (b) {
        case SIGINT:
        case SIGQUIT:
        case SIGHUP:
        case SIGTERM:
            grace_log("received signal %d (%s): graceful shutdown", b, strsignal(b));
            grace_shutdown_all();
            break;
        case SIGCHLD:
            grace__reap_children();
            break;
        case SIGUSR1:
        case SIGUSR2:
            grace_log("received signal %d (%s): %s restart", b, strsignal(b),
                      b == SIGUSR1 ? "graceful" : "full");
            grace__on_restart_signal(b);
            break;
        default:
            grace_log("received signal %d (%s): ignored", b, strsignal(b));
            break;
        }
    }
}

static pthread_once_t signals_once = PTHREAD_ONCE_INIT;
static int signals_err;

static void init_signals(void)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        signals_err = -errno;
        return;
    }
    /* The reading end blocks in the signal thread; only the writer must
     * never block. */
    fcntl(signal_pipe[0], F_SETFL, 0);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&t, &attr, signal_thread, NULL);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        signals_err = -r;
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    /* SIGCHLD reaps the new processes a restart started, at once. Only if
     * the program left it alone: a program with its own handler (or SIG_IGN)
     * keeps it, and the monitor's once-a-second poll reaps ours instead. */
    struct sigaction old;
    if (sigaction(SIGCHLD, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
        old.sa_handler == SIG_DFL) {
        sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
        sigaction(SIGCHLD, &sa, NULL);
    }
}

static int start_signals(void)
{
    pthread_once(&signals_once, init_signals);
    return signals_err;
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
    pthread_mutex_lock(&grace__proc.mu);
    for (grace_server_t *s = grace__proc.servers; s && n < 256; s = s->next)
        list[n++] = s;
    pthread_mutex_unlock(&grace__proc.mu);
    while (n > 0) /* the list is newest first */
        fn(list[--n], user);
}
