/*
 * health.c -- probes for load balancers and Kubernetes: a readiness route
 * that turns unhealthy the moment a drain begins (so a balancer stops
 * sending new work before the server stops taking it), and a liveness route.
 * Unauthenticated on purpose: they reveal nothing but "ready" or "draining".
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static int ready(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    grace_server_t *s = grace_request_server(req);
    bool up = atomic_load(&s->state) == GRACE__SRV_RUNNING && !grace__lifecycle_stopping();
    grace_response_set_header(res, "Cache-Control", "no-store");
    if (!up) {
        grace_response_set_status(res, 503);
        return grace_response_writeln(res, "draining");
    }
    return grace_response_writeln(res, "ready");
}

static int alive(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    grace_response_set_header(res, "Cache-Control", "no-store");
    return grace_response_writeln(res, "alive");
}

int grace_server_enable_probes(grace_server_t *s, const char *ready_pattern,
                               const char *live_pattern)
{
    if (s == NULL || (ready_pattern && ready_pattern[0] != '/') ||
        (live_pattern && live_pattern[0] != '/'))
        return GRACE_EINVAL;
    char pattern[512];
    int r = 0;
    if (ready_pattern) {
        if (strlen(ready_pattern) >= sizeof pattern - 4)
            return GRACE_EINVAL;
        snprintf(pattern, sizeof pattern, "GET:%s", ready_pattern);
        r = grace_server_bind_handler(s, pattern, ready, NULL);
    }
    if (r == 0 && live_pattern) {
        if (strlen(live_pattern) >= sizeof pattern - 4)
            return GRACE_EINVAL;
        snprintf(pattern, sizeof pattern, "GET:%s", live_pattern);
        r = grace_server_bind_handler(s, pattern, alive, NULL);
    }
    return r;
}
