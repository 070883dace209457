/*
 * sys.c -- small wrappers over the system that several files need, so each
 * is written once: detached threads, the wall clock, the is-executable
 * check. (The monotonic
 * clock and the Date header are in log.c, beside the log's own clock.)
 */
#include "internal.h"

#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int grace__thread_detached(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return GRACE_ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return r == 0 ? 0 : -r;
}

int64_t grace__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool grace__is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}
