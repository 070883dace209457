/*
 * seed.h -- the handlers gf's smooth-restart walkthrough uses, shared by the
 * examples that repeat it (basic over HTTP, https over TLS): /pid answers
 * the serving process's PID, /sleep answers it before and after sleeping
 * (10 s by default, --sleep-ms), so a request that spans a restart shows
 * which process served it.
 */
#ifndef GRACE_EXAMPLES_SEED_H
#define GRACE_EXAMPLES_SEED_H

#include "grace.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static int64_t sleep_ms = 10000;

/* Write this process's PID and a newline (gf's Writeln(gproc.Pid())). */
static int write_pid(grace_response_t *res)
{
    char pid[24];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    return grace_response_writeln(res, pid);
}

static int handle_pid(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return write_pid(res);
}

/* Blocks its worker thread on purpose: grace keeps serving other requests. */
static int handle_sleep(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    int rc = write_pid(res);
    if (rc < 0)
        return rc;
    struct timespec left = {.tv_sec = sleep_ms / 1000, .tv_nsec = (sleep_ms % 1000) * 1000000};
    /* A signal (the one asking for shutdown, say) may cut the sleep short;
     * sleep the rest so the answer is the same either way. */
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    return write_pid(res);
}

#endif
