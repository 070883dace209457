/*
 * request.c -- what a handler can ask of a request, and the dispatch of a
 * parsed request through the middleware chain to its route.
 *
 * The request lives in its connection's exchange (conn.c fills in the
 * server, the arena and the client's address; nothing here calls back into
 * the connection) and is reset for every request; every view handed out
 * points into the connection's read buffer or the per-request arena, so it
 * is valid until the handler returns. Dispatch
 * builds the chain once per request: global middleware, then the server's
 * middleware whose prefix covers the path, then the final step (the route's
 * handler, or a 404/405 answer). grace_next() advances it. Query parameters
 * are looked up and decoded by url.c (grace__query_find) into the arena.
 * SPEC S3.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

grace_str_t grace_request_method(const grace_request_t *r)
{
    return r->h.method;
}

grace_str_t grace_request_target(const grace_request_t *r)
{
    return r->h.target;
}

grace_str_t grace_request_path(const grace_request_t *r)
{
    return r->path;
}

grace_str_t grace_request_query_string(const grace_request_t *r)
{
    return r->h.query;
}

static void *arena_alloc(void *arena, size_t size)
{
    return grace__arena_alloc(arena, size);
}

grace_str_t grace_request_query(grace_request_t *r, const char *name)
{
    /* url.c does the lookup and the decoding; out of memory reads as absent
     * ({NULL,0}), like a missing parameter. */
    grace_str_t v;
    (void)grace__query_find(r->h.query, name, arena_alloc, r->arena, &v);
    return v;
}

grace_str_t grace_request_host(const grace_request_t *r)
{
    if (r->h.authority.ptr) /* RFC 9112 3.2.2: the target's authority wins */
        return r->h.authority;
    return grace_request_header(r, "Host");
}

grace_str_t grace_request_header(const grace_request_t *r, const char *name)
{
    size_t len = strlen(name);
    if (r->h.authority.ptr && len == 4 && strncasecmp(name, "Host", 4) == 0)
        return r->h.authority;
    for (size_t i = 0; i < r->h.n_headers; i++) {
        const grace_header_t *h = &r->h.headers[i];
        if (h->name.len == len && strncasecmp(h->name.ptr, name, len) == 0)
            return h->value;
    }
    return (grace_str_t){NULL, 0};
}

size_t grace_request_headers(const grace_request_t *r, const grace_header_t **out)
{
    *out = r->h.headers;
    return r->h.n_headers;
}

grace_str_t grace_request_param(const grace_request_t *r, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < r->match.n_params; i++)
        if (r->match.names[i].len == len && memcmp(r->match.names[i].ptr, name, len) == 0)
            return r->match.values[i];
    return (grace_str_t){NULL, 0};
}

grace_str_t grace_request_body(const grace_request_t *r)
{
    if (r->body.len == 0)
        return (grace_str_t){"", 0};
    return r->body;
}

const char *grace_request_client_ip(const grace_request_t *r)
{
    return r->client_ip;
}

int grace_request_client_port(const grace_request_t *r)
{
    return r->client_port;
}

int grace_request_http_minor(const grace_request_t *r)
{
    return r->h.minor_version;
}

grace_server_t *grace_request_server(const grace_request_t *r)
{
    return r->server;
}

void *grace_request_alloc(grace_request_t *r, size_t size)
{
    return grace__arena_alloc(r->arena, size);
}

/* ---- Dispatch ------------------------------------------------------------- */

static bool covers(const grace__middleware_t *m, grace_str_t path)
{
    if (m->prefix == NULL)
        return true;
    if (path.len < m->prefix_len || memcmp(path.ptr, m->prefix, m->prefix_len) != 0)
        return false;
    return path.len == m->prefix_len || path.ptr[m->prefix_len] == '/';
}

static void final_step(grace_request_t *req, grace_response_t *res)
{
    switch (req->route_status) {
    case 200:
        if (req->match.fn(req, res, req->match.user) < 0 && res->body.len == 0 && !res->streaming) {
            grace_response_set_status(res, 500);
            grace_response_writeln(res, "Internal Server Error");
        }
        return;
    case 405:
        grace_response_set_status(res, 405);
        grace_response_set_header(res, "Allow", req->match.allow);
        grace_response_writeln(res, "Method Not Allowed");
        return;
    default:
        grace_response_set_status(res, 404);
        grace_response_writeln(res, "Not Found");
        return;
    }
}

void grace_next(grace_request_t *req, grace_response_t *res)
{
    if (req->chain_pos < req->n_chain) {
        const grace__middleware_t *m = req->chain[req->chain_pos++];
        m->fn(req, res, m->user);
    } else if (req->chain_pos == req->n_chain) {
        req->chain_pos++; /* the final step runs once, however often next is called */
        final_step(req, res);
    }
}

void grace__request_dispatch(grace_request_t *req, grace_response_t *res)
{
    grace_server_t *s = req->server;
    req->route_status = grace__router_match(s->router, req->h.method, req->path, &req->match);
    req->is_head = req->h.method.len == 4 && memcmp(req->h.method.ptr, "HEAD", 4) == 0;
    req->n_chain = 0;
    /* Global middleware is fixed before any server starts: read unlocked. */
    for (size_t i = 0; i < s->n_global_mw; i++)
        req->chain[req->n_chain++] = &s->global_mw[i];
    for (size_t i = 0; i < s->n_mw; i++)
        if (covers(&s->mw[i], req->path))
            req->chain[req->n_chain++] = &s->mw[i];
    req->chain_pos = 0;
    grace_next(req, res);
}
