/*
 * sys.c -- small wrappers over the system that several files need, so each
 * is written once: detached threads, the wall clock, the is-executable
 * check, and how many CPUs this process may use. (The monotonic
 * clock and the Date header are in log.c, beside the log's own clock.)
 */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int grace__cpu_quota(const char *cpu_max)
{
    /* cgroup v2's cpu.max: "QUOTA PERIOD" (microseconds), or "max PERIOD". */
    char quota[32];
    long long period = 0;
    if (sscanf(cpu_max, "%31s %lld", quota, &period) != 2 || period <= 0 ||
        strcmp(quota, "max") == 0)
        return 0;
    char *end;
    long long q = strtoll(quota, &end, 10);
    if (*end != '\0' || q <= 0)
        return 0;
    long long cpus = (q + period - 1) / period; /* 1.5 CPUs: 2 loops, each less busy */
    return cpus > 1 << 16 ? 1 << 16 : (int)cpus;
}

/* The tightest cpu.max on the way from our cgroup (v2) up to the root. */
static int cgroup_cpus(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL)
        return 0;
    char line[4096], path[4096] = "";
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0)
            snprintf(path, sizeof path, "%s", line + 3);
    fclose(f);
    path[strcspn(path, "\n")] = '\0';
    int best = 0;
    while (path[0] == '/') {
        char file[4200], buf[64];
        snprintf(file, sizeof file, "/sys/fs/cgroup%s/cpu.max", strcmp(path, "/") ? path : "");
        FILE *m = fopen(file, "re");
        if (m) {
            if (fgets(buf, sizeof buf, m)) {
                int q = grace__cpu_quota(buf);
                if (q > 0 && (best == 0 || q < best))
                    best = q;
            }
            fclose(m);
        }
        char *slash = strrchr(path, '/');
        if (slash == path) {
            if (path[1] == '\0')
                break;
            path[1] = '\0';
        } else {
            *slash = '\0';
        }
    }
    return best;
}

int grace__usable_cpus(void)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int quota = cgroup_cpus();
    if (quota > 0 && quota < n)
        n = quota;
    return n > 0 ? n : 1;
}
