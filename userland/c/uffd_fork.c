/* uffd_fork: UFFD_EVENT_FORK. A process registers a range for missing faults with a
 * userfaultfd that negotiated UFFD_FEATURE_EVENT_FORK and forks: a handler thread
 * reads the fork event, whose arg.fork.ufd is a new userfaultfd for the child, and
 * serves the child's faults there (with 'C' pages) while the parent's come on the
 * first (with 'P' pages). Without the feature the child's range is not registered and
 * fills with zeros. Prints `uffd_fork: check NAME: ok` per check and exits 1 at the
 * first failure. Runs unchanged on Linux 6.12 as root. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "uffd_fork"
#include "uffd_common.h"

/* What the handler thread saw. */
static struct {
    int parent_fd;
    volatile int child_fd;        /* from the fork event, -1 before */
    volatile int fork_events;
    volatile int parent_faults, child_faults;
    volatile int stop;
    char child_link[64];
} seen = { .child_fd = -1 };

static void serve(int fd, char fill, volatile int *count) {
    struct uffd_msg msg;
    while (read(fd, &msg, sizeof msg) == (ssize_t)sizeof msg) {
        if (msg.event == UFFD_EVENT_FORK) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%u", msg.arg.fork.ufd);
            ssize_t n = readlink(path, seen.child_link, sizeof seen.child_link - 1);
            if (n > 0)
                seen.child_link[n] = 0;
            seen.child_fd = (int)msg.arg.fork.ufd;
            __sync_synchronize();
            seen.fork_events++;
            continue;
        }
        if (msg.event != UFFD_EVENT_PAGEFAULT)
            continue;
        static char page[PG] __attribute__((aligned(4096)));
        memset(page, fill, PG);
        struct uffdio_copy copy = { .dst = msg.arg.pagefault.address & ~(uint64_t)(PG - 1),
                                    .src = (uint64_t)(uintptr_t)page, .len = PG };
        /* Counted before the copy wakes the faulting thread, which may look at it. */
        (*count)++;
        __sync_synchronize();
        if (ioctl(fd, UFFDIO_COPY_IOC, &copy) != 0)
            (*count)--;
    }
}

static void *handler(void *arg) {
    (void)arg;
    while (!seen.stop) {
        struct pollfd fds[2] = { { seen.parent_fd, POLLIN, 0 }, { seen.child_fd, POLLIN, 0 } };
        int n = seen.child_fd >= 0 ? 2 : 1;
        if (poll(fds, n, 20) < 0)
            continue;
        serve(seen.parent_fd, 'P', &seen.parent_faults);
        if (seen.child_fd >= 0)
            serve(seen.child_fd, 'C', &seen.child_faults);
    }
    return NULL;
}

int main(void) {
    uint64_t offered = 0;
    begin("api-offers-event-fork");
    int fd = new_uffd(UFFD_FEATURE_EVENT_FORK, &offered);
    EXPECT(fd >= 0);
    EXPECT(offered & UFFD_FEATURE_EVENT_FORK);
    ok();

    begin("fork-event-gives-the-child-a-userfaultfd");
    char *p = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ(register_missing(fd, p, 2 * PG), 0);
    seen.parent_fd = fd;
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, handler, NULL), 0);
    pid_t child = fork();
    if (child == 0) {
        /* The child's fault goes to the child's context: a 'C' page. */
        _exit(p[0] == 'C' && p[PG + 9] == 'C' ? 0 : 3);
    }
    EXPECT(child > 0);
    /* fork returned once the handler read the event (it records it just after). */
    for (int i = 0; i < 1000 && seen.fork_events == 0; i++)
        usleep(10000);
    EXPECT_EQ(seen.fork_events, 1);
    EXPECT(seen.child_fd >= 0);
    EXPECT(!strcmp(seen.child_link, "anon_inode:[userfaultfd]"));
    int status = -1;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(seen.child_faults, 2);
    EXPECT_EQ(seen.parent_faults, 0);
    ok();

    begin("parent-faults-stay-on-the-parents-context");
    EXPECT_EQ(p[PG], 'P');
    EXPECT_EQ(seen.parent_faults, 1);
    EXPECT_EQ(seen.child_faults, 2);
    seen.stop = 1;
    pthread_join(t, NULL);
    /* With nobody reading it any more, the context must go: a fork would otherwise
     * wait for its event to be read (as Linux's does). */
    close(seen.child_fd);
    close(fd);
    ok();

    begin("without-event-fork-the-child-is-not-registered");
    int plain = new_uffd(0, NULL);
    EXPECT(plain >= 0);
    char *q = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(q != MAP_FAILED);
    EXPECT_EQ(register_missing(plain, q, PG), 0);
    child = fork();
    if (child == 0)
        _exit(q[0] == 0 ? 0 : 3); /* an ordinary zero-fill fault */
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct uffd_msg msg;
    errno = 0;
    EXPECT_EQ(read(plain, &msg, sizeof msg), -1);
    EXPECT_EQ(errno, EAGAIN);
    ok();

    printf("uffd_fork: all checks passed\n");
    return 0;
}
