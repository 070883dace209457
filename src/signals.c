/*
 * signals.c -- signal handling for the whole process (SPEC G7).
 *
 * Other files register what a signal means (lifecycle.c: SIGINT, SIGQUIT,
 * SIGHUP, SIGTERM shut down; restart.c: SIGUSR1, SIGUSR2 restart, SIGCHLD
 * reaps); grace__signals_start() installs the handlers once. A handler only
 * writes the signal's number to a pipe (async-signal-safe); one thread reads
 * the pipe and runs the registered function, so nothing unsafe runs in
 * signal context, whichever thread took the signal, and the functions may
 * block (a restart waits for the new process).
 *
 * SIGCHLD is installed only if the program left it at its default: a
 * program with a handler of its own (or SIG_IGN) keeps it, and restart.c
 * polls for its children instead.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static struct {
    pthread_mutex_t mu;
    void (*fn[NSIG])(int sig);
    int pipe[2];
    pthread_once_t once;
    int err;
} sg = {.mu = PTHREAD_MUTEX_INITIALIZER, .pipe = {-1, -1}, .once = PTHREAD_ONCE_INIT};

int grace__signal_on(int sig, void (*fn)(int sig))
{
    if (sig <= 0 || sig >= NSIG)
        return GRACE_EINVAL;
    pthread_mutex_lock(&sg.mu);
    sg.fn[sig] = fn;
    pthread_mutex_unlock(&sg.mu);
    return 0;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(sg.pipe[1], &b, 1); /* full pipe: the signal is already pending */
    (void)w;
    errno = saved;
}

static void *signal_thread(void *arg)
{
    (void)arg;
    for (;;) {
        unsigned char b;
        ssize_t n = read(sg.pipe[0], &b, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        pthread_mutex_lock(&sg.mu);
        void (*fn)(int) = sg.fn[b];
        pthread_mutex_unlock(&sg.mu);
        if (fn)
            fn(b);
        else
            grace_log("received signal %d (%s): ignored", b, strsignal(b));
    }
}

static void install(void)
{
    if (pipe2(sg.pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        sg.err = -errno;
        return;
    }
    /* The reading end blocks in the signal thread; only the writer must
     * never block. */
    fcntl(sg.pipe[0], F_SETFL, 0);
    int r = grace__thread_detached(signal_thread, NULL);
    if (r < 0) {
        sg.err = r;
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    pthread_mutex_lock(&sg.mu);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sg.fn[sig] == NULL)
            continue;
        sa.sa_flags = SA_RESTART;
        if (sig == SIGCHLD) {
            struct sigaction old;
            if (sigaction(SIGCHLD, NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO) ||
                old.sa_handler != SIG_DFL)
                continue;
            sa.sa_flags |= SA_NOCLDSTOP;
        }
        sigaction(sig, &sa, NULL);
    }
    pthread_mutex_unlock(&sg.mu);
}

int grace__signals_start(void)
{
    pthread_once(&sg.once, install);
    return sg.err;
}
