/* no_io_uring -- run a program where io_uring is forbidden, as a container's
 * seccomp profile forbids it (Docker's default answers EPERM; a kernel
 * without io_uring, or with kernel.io_uring_disabled=2, says ENOSYS or
 * EPERM): a seccomp filter makes io_uring_setup(2) fail with that errno,
 * for the program and everything it executes (a restart's new process).
 *
 *   no_io_uring [--errno EPERM|ENOSYS] PROGRAM [ARG...]
 *
 * The real kernel mechanism, not a test switch inside grace: this is how
 * the tests check the fallback to epoll. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int err = EPERM, first = 1;
    if (argc > 2 && strcmp(argv[1], "--errno") == 0) {
        err = strcmp(argv[2], "ENOSYS") == 0 ? ENOSYS : EPERM;
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: no_io_uring [--errno EPERM|ENOSYS] PROGRAM [ARG...]\n");
        return 2;
    }
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
        perror("no_io_uring: seccomp");
        return 2;
    }
    execvp(argv[first], argv + first);
    perror("no_io_uring: exec");
    return 127;
}
