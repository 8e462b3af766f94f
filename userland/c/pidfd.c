/* pidfd: process descriptors and process_mrelease, against what Linux 6.12 does.
 * pidfd_open of a child, poll readiness on its exit, a signal through the pidfd,
 * waitid(P_PIDFD) (blocking, and EAGAIN on a PIDFD_NONBLOCK descriptor), CLONE_PIDFD,
 * the ESRCH/EINVAL/EBADF cases; then the user-space OOM-daemon scenario: a child
 * touches 384 MiB, the parent SIGKILLs it and calls process_mrelease, which returns
 * only once MemFree is back up; and the refusals (live target, self, flags, and a
 * restricted caller, which Peios refuses with EPERM while Linux has no such check).
 * Prints `pidfd: check NAME: ok` per check; exits 1 at the first failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#define NR_pidfd_send_signal 424
#define NR_pidfd_open 434
#define NR_process_mrelease 448
#define NR_peios_restrict_self 1024
#define PIDFD_NONBLOCK O_NONBLOCK
#define CLONE_PIDFD_FLAG 0x1000
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void check(int ok, const char *name) {
    if (!ok) {
        printf("pidfd: check %s: FAILED (errno %d)\n", name, errno);
        fflush(stdout);
        exit(1);
    }
    printf("pidfd: check %s: ok\n", name);
    fflush(stdout);
}

static int pidfd_open(pid_t pid, unsigned flags) {
    return syscall(NR_pidfd_open, pid, flags);
}

static int pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned flags) {
    return syscall(NR_pidfd_send_signal, fd, sig, info, flags);
}

static int process_mrelease(int fd, unsigned flags) {
    return syscall(NR_process_mrelease, fd, flags);
}

/* -1 with errno `e`. */
static int fails_with(long r, int e) {
    return r == -1 && errno == e;
}

/* The events poll reports on `fd` within `ms`. */
static int poll_events(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, ms);
    return n < 0 ? -1 : p.revents;
}

/* A child that waits to be signalled. */
static pid_t sleeper(void) {
    pid_t pid = fork();
    if (pid == 0) {
        for (;;)
            pause();
    }
    return pid;
}

/* MemFree from /proc/meminfo, in kB. */
static long mem_free_kb(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemFree: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void pidfd_basics(void) {
    pid_t child = sleeper();
    int fd = pidfd_open(child, 0);
    check(fd >= 0, "open-child");
    check((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "open-is-cloexec");
    check(poll_events(fd, 0) == 0, "live-child-not-readable");
    check(pidfd_send_signal(fd, 0, NULL, 0) == 0, "signal-0-probes");

    int nb = pidfd_open(child, PIDFD_NONBLOCK);
    siginfo_t info;
    check(nb >= 0 && (fcntl(nb, F_GETFL) & O_NONBLOCK), "open-nonblock");
    check(fails_with(waitid(P_PIDFD, nb, &info, WEXITED), EAGAIN), "waitid-nonblock-eagain");
    memset(&info, 0xff, sizeof info);
    check(waitid(P_PIDFD, fd, &info, WEXITED | WNOHANG) == 0 && info.si_pid == 0,
          "waitid-wnohang-zeroes-info");

    check(pidfd_send_signal(fd, SIGTERM, NULL, 0) == 0, "send-sigterm");
    check(poll_events(fd, 5000) == POLLIN, "exited-child-readable");
    memset(&info, 0, sizeof info);
    check(waitid(P_PIDFD, fd, &info, WEXITED | WNOWAIT) == 0 && info.si_pid == child,
          "waitid-wnowait-keeps-zombie");
    memset(&info, 0, sizeof info);
    check(waitid(P_PIDFD, fd, &info, WEXITED) == 0 && info.si_pid == child &&
              info.si_signo == SIGCHLD && info.si_code == CLD_KILLED && info.si_status == SIGTERM,
          "waitid-pidfd-reports-signal");
    check(poll_events(fd, 0) == (POLLIN | POLLHUP), "reaped-child-hup");
    check(fails_with(pidfd_send_signal(fd, SIGTERM, NULL, 0), ESRCH), "signal-reaped-esrch");
    check(fails_with(pidfd_open(child, 0), ESRCH), "open-reaped-esrch");
    check(fails_with(waitid(P_PIDFD, fd, &info, WEXITED), ECHILD), "waitid-reaped-echild");
    close(nb);

    /* The argument checks. */
    check(fails_with(pidfd_open(getpid(), 1), EINVAL), "open-bad-flags-einval");
    check(fails_with(pidfd_open(0, 0), EINVAL), "open-pid-0-einval");
    check(fails_with(pidfd_open(-1, 0), EINVAL), "open-negative-einval");
    check(fails_with(pidfd_send_signal(0, 0, NULL, 0), EBADF), "signal-non-pidfd-ebadf");
    check(fails_with(pidfd_send_signal(999, 0, NULL, 0), EBADF), "signal-closed-fd-ebadf");
    check(fails_with(waitid(P_PIDFD, 0, &info, WEXITED), EBADF), "waitid-non-pidfd-ebadf");
    check(fails_with(waitid(P_PIDFD, fd, &info, 0), EINVAL), "waitid-no-wexited-einval");
    close(fd);

    int me = pidfd_open(getpid(), 0);
    check(me >= 0, "open-self");
    check(fails_with(pidfd_send_signal(me, 0, NULL, 0x40), EINVAL), "signal-bad-flags-einval");
    check(fails_with(pidfd_send_signal(me, 65, NULL, 0), EINVAL), "signal-bad-signal-einval");
    /* An info whose si_signo is not the signal: EINVAL. */
    memset(&info, 0, sizeof info);
    info.si_signo = SIGUSR2;
    info.si_code = SI_QUEUE;
    check(fails_with(pidfd_send_signal(me, SIGUSR1, &info, 0), EINVAL), "signal-info-mismatch-einval");
    close(me);
}

static void clone_pidfd(void) {
    int fd = -1;
    long pid = syscall(SYS_clone, SIGCHLD | CLONE_PIDFD_FLAG, 0, &fd, 0, 0);
    if (pid == 0)
        syscall(SYS_exit_group, 7);
    check(pid > 0 && fd >= 0, "clone-pidfd-writes-fd");
    check((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0, "clone-pidfd-cloexec");
    check(poll_events(fd, 5000) == POLLIN, "clone-pidfd-readable-at-exit");
    siginfo_t info = {0};
    check(waitid(P_PIDFD, fd, &info, WEXITED) == 0 && info.si_pid == pid &&
              info.si_code == CLD_EXITED && info.si_status == 7,
          "clone-pidfd-waitid-exit-status");
    close(fd);
    int tid = 0;
    check(fails_with(syscall(SYS_clone, SIGCHLD | CLONE_PIDFD_FLAG | CLONE_PARENT_SETTID, 0, &tid, 0, 0), EINVAL),
          "clone-pidfd-with-parent-settid-einval");
    check(fails_with(syscall(SYS_clone, SIGCHLD | CLONE_PIDFD_FLAG | CLONE_DETACHED, 0, &fd, 0, 0), EINVAL),
          "clone-pidfd-with-detached-einval");
    check(fails_with(syscall(SYS_clone, SIGCHLD | CLONE_PIDFD_FLAG, 0, (void *)8, 0, 0), EFAULT),
          "clone-pidfd-bad-pointer-efault");

    /* With every descriptor taken, CLONE_PIDFD fails with EMFILE and makes no child. */
    int fds[2048], n = 0;
    while (n < 2048) {
        int f = open("/dev/null", O_RDONLY);
        if (f < 0)
            break;
        fds[n++] = f;
    }
    int full_errno = errno;
    long r = syscall(SYS_clone, SIGCHLD | CLONE_PIDFD_FLAG, 0, &fd, 0, 0);
    int clone_errno = errno;
    if (r == 0)
        syscall(SYS_exit_group, 9);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    int status = 0;
    pid_t none = waitpid(-1, &status, WNOHANG);
    int wait_errno = errno;
    check(full_errno == EMFILE && r == -1 && clone_errno == EMFILE && none == -1 &&
              wait_errno == ECHILD,
          "clone-pidfd-emfile-makes-no-child");
}

static void mrelease_refusals(void) {
    pid_t child = sleeper();
    int fd = pidfd_open(child, 0);
    int me = pidfd_open(getpid(), 0);
    check(fails_with(process_mrelease(fd, 0), EINVAL), "mrelease-live-target-einval");
    check(fails_with(process_mrelease(fd, 1), EINVAL), "mrelease-flags-einval");
    check(fails_with(process_mrelease(me, 0), EINVAL), "mrelease-self-einval");
    check(fails_with(process_mrelease(0, 0), EBADF), "mrelease-non-pidfd-ebadf");

    /* A restricted caller: Peios gates process_mrelease and pidfd_send_signal on the
     * target's SD (PROCESS_SET_QUOTA, PROCESS_TERMINATE) and gives EPERM; Linux has no
     * restricted tokens (the call is ENOSYS) and no check in process_mrelease. */
    pid_t helper = fork();
    if (helper == 0) {
        int peios = syscall(NR_peios_restrict_self) == 0;
        int mr = process_mrelease(fd, 0) == -1 ? errno : 0;
        int sig = pidfd_send_signal(fd, 0, NULL, 0) == -1 ? errno : 0;
        printf("pidfd: restricted caller (%s): process_mrelease errno %d, pidfd_send_signal errno %d\n",
               peios ? "peios" : "linux", mr, sig);
        fflush(stdout);
        if (peios)
            _exit(mr == EPERM && sig == EPERM ? 0 : 1);
        _exit(mr == EINVAL && sig == 0 ? 0 : 1);
    }
    int status;
    check(waitpid(helper, &status, 0) == helper && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "mrelease-restricted-caller-refused");
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    close(fd);
    close(me);
}

/* The OOM daemon: a child touches `mib` MiB, the parent kills it and takes the
 * memory back with process_mrelease. */
static void oom_daemon(long mib) {
    int ready[2];
    check(pipe(ready) == 0, "pipe");
    long base = mem_free_kb();
    pid_t child = fork();
    if (child == 0) {
        size_t len = (size_t)mib << 20;
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            _exit(1);
        for (size_t i = 0; i < len; i += 4096)
            p[i] = 1;
        char c = 1;
        write(ready[1], &c, 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    check(read(ready[0], &c, 1) == 1, "victim-touched-memory");
    int fd = pidfd_open(child, 0);
    check(fd >= 0, "victim-pidfd");
    long low = mem_free_kb();
    printf("pidfd: MemFree before %ld kB, with the victim %ld kB\n", base, low);
    check(base - low >= mib * 1024 * 9 / 10, "victim-holds-its-memory");

    double t0 = now_ms();
    check(pidfd_send_signal(fd, SIGKILL, NULL, 0) == 0, "victim-sigkilled");
    int r = process_mrelease(fd, 0);
    int e = errno;
    double t1 = now_ms();
    long after = mem_free_kb();
    printf("pidfd: process_mrelease returned %d (errno %d) after %.3f ms; MemFree %ld kB\n",
           r, r ? e : 0, t1 - t0, after);
    errno = e;
    /* ESRCH: the victim had already exited (its memory went with it). */
    check(r == 0 || e == ESRCH, "mrelease-dying-target");
    check(after - low >= mib * 1024 * 9 / 10, "mrelease-returns-with-memory-back");
    siginfo_t info = {0};
    check(waitid(P_PIDFD, fd, &info, WEXITED) == 0 && info.si_code == CLD_KILLED &&
              info.si_status == SIGKILL,
          "victim-reaped-killed");
    close(fd);
    close(ready[0]);
}

/* One victim of `mib` MiB killed; returns the ms from SIGKILL until MemFree is back
 * within 10% of the victim's size: by process_mrelease (`mrelease`), else by waiting
 * for the pidfd to poll readable (the exit). */
static double time_to_memory_back(long mib, int mrelease, int advice) {
    int ready[2];
    if (pipe(ready))
        return -1;
    pid_t child = fork();
    if (child == 0) {
        size_t len = (size_t)mib << 20;
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED && advice >= 0)
            madvise(p, len, advice);
        for (size_t i = 0; p != MAP_FAILED && i < len; i += 4096)
            p[i] = 1;
        char c = 1;
        write(ready[1], &c, 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    read(ready[0], &c, 1);
    close(ready[0]);
    int fd = pidfd_open(child, 0);
    long low = mem_free_kb();
    double t0 = now_ms();
    pidfd_send_signal(fd, SIGKILL, NULL, 0);
    if (mrelease)
        process_mrelease(fd, 0);
    else
        poll_events(fd, -1);
    while (mem_free_kb() - low < mib * 1024 * 9 / 10)
        ;
    double t = now_ms() - t0;
    siginfo_t info;
    waitid(P_PIDFD, fd, &info, WEXITED);
    close(fd);
    return t;
}

/* `pidfd bench MIB ROUNDS [PAGES]`: SIGKILL-to-memory-back, with process_mrelease and
 * by waiting for the exit, best and mean of ROUNDS each. PAGES: `default` (the
 * system's THP setting: `always` on Debian's Linux, `madvise` here), `4k`
 * (MADV_NOHUGEPAGE) or `huge` (MADV_HUGEPAGE), so both kernels can be compared
 * with the same page size. */
static int bench(long mib, int rounds, const char *pages) {
    int advice = -1;
    if (!strcmp(pages, "4k"))
        advice = MADV_NOHUGEPAGE;
    else if (!strcmp(pages, "huge"))
        advice = MADV_HUGEPAGE;
    else if (strcmp(pages, "default")) {
        fprintf(stderr, "pidfd bench: pages must be default, 4k or huge\n");
        return 2;
    }
    for (int mode = 1; mode >= 0; mode--) {
        double best = 1e18, sum = 0;
        for (int i = 0; i < rounds; i++) {
            double t = time_to_memory_back(mib, mode, advice);
            sum += t;
            if (t < best)
                best = t;
        }
        printf("pidfd-bench: %s: %ld MiB (%s pages) back in best %.3f ms, mean %.3f ms over %d\n",
               mode ? "process_mrelease" : "wait-for-exit", mib, pages, best, sum / rounds,
               rounds);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "bench"))
        return bench(argc > 2 ? atol(argv[2]) : 512, argc > 3 ? atoi(argv[3]) : 5,
                     argc > 4 ? argv[4] : "default");
    long mib = argc > 1 ? atol(argv[1]) : 384;
    pidfd_basics();
    clone_pidfd();
    mrelease_refusals();
    oom_daemon(mib);
    printf("pidfd: all checks passed\n");
    return 0;
}
