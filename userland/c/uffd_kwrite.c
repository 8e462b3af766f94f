/* uffd_kwrite: the kernel's own writes to user memory outside a system call, on a page
 * a userfaultfd holds (missing until its handler answers, 300 ms late on purpose, well
 * past any spin the kernel may do before it gives up on a page):
 * - a signal frame on an alternate stack in such a page: delivery waits for the
 *   handler, and the signal handler runs (Linux: handle_userfault waits; a kernel that
 *   gives up kills the process with SIGSEGV instead);
 * - the exit of a thread whose clear_child_tid word is in such a page: the exit does
 *   not wait (Linux's handle_userfault skips an exiting task), the word keeps what the
 *   handler put there, and the exit is not held up by the handler.
 * The same waits serve a page that is only slow to come back from swap. Prints
 * `uffd_kwrite: check NAME: ok` per check and exits 1 at the first failure. Runs
 * unchanged on Linux 6.12 as root. */
#define _GNU_SOURCE
#define PROG "uffd_kwrite"
#include "uffd_common.h"
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>

/* How long the handler holds each fault before it answers. */
#define HOLD_MS 300
/* What the handler's page holds at the tid word's offset ("still set"). */
#define STILL_SET 0x7777

static struct {
    int fd;
    volatile int faults;   /* answered so far */
    volatile int stop;
} served;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Answers every missing fault HOLD_MS late with a page whose every 32-bit word is
 * STILL_SET. */
static void *handler(void *arg) {
    (void)arg;
    static uint32_t page[PG / 4] __attribute__((aligned(4096)));
    for (long i = 0; i < PG / 4; i++)
        page[i] = STILL_SET;
    while (!served.stop) {
        struct pollfd p = { served.fd, POLLIN, 0 };
        if (poll(&p, 1, 20) <= 0)
            continue;
        struct uffd_msg msg;
        if (read(served.fd, &msg, sizeof msg) != (ssize_t)sizeof msg ||
            msg.event != UFFD_EVENT_PAGEFAULT)
            continue;
        usleep(HOLD_MS * 1000);
        struct uffdio_copy copy = { .dst = msg.arg.pagefault.address & ~(uint64_t)(PG - 1),
                                    .src = (uint64_t)(uintptr_t)page, .len = PG };
        /* Counted before the copy wakes the faulting thread, which may look at it. */
        served.faults++;
        __sync_synchronize();
        if (ioctl(served.fd, UFFDIO_COPY_IOC, &copy) != 0)
            served.faults--;
    }
    return NULL;
}

static volatile int handled_sig;
static volatile uintptr_t handler_sp;

static void on_usr1(int sig) {
    int here;
    handled_sig = sig;
    handler_sp = (uintptr_t)&here;
}

/* The "Threads:" count of /proc/self/status (-1 if unreadable). */
static int threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

static int quiet_thread(void *arg) {
    (void)arg;
    return 0; /* musl's clone makes the thread exit with this */
}

int main(void) {
    begin("userfaultfd");
    served.fd = new_uffd(0, NULL);
    EXPECT(served.fd >= 0);
    char *held = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(held != MAP_FAILED);
    EXPECT_EQ(register_missing(served.fd, held, 4 * PG), 0);
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, handler, NULL), 0);
    ok();

    /* Pages 0-1: the alternate stack (the frame lands at its top, in page 1). */
    begin("signal-frame-on-a-held-altstack-waits-for-the-handler");
    stack_t ss = { .ss_sp = held, .ss_size = 2 * PG, .ss_flags = 0 };
    EXPECT_EQ(sigaltstack(&ss, NULL), 0);
    struct sigaction sa = { 0 };
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    EXPECT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    uint64_t start = now_ms();
    EXPECT_EQ(raise(SIGUSR1), 0);
    uint64_t took = now_ms() - start;
    EXPECT_EQ(handled_sig, SIGUSR1);
    EXPECT(handler_sp >= (uintptr_t)held && handler_sp < (uintptr_t)held + 2 * PG);
    EXPECT(served.faults >= 1);
    EXPECT(took >= HOLD_MS / 2);
    ok();

    /* Page 3: a thread's clear_child_tid word, never touched before the thread exits. */
    begin("exit-does-not-wait-for-a-held-tid-page");
    int before = served.faults;
    volatile uint32_t *tid_word = (volatile uint32_t *)(held + 3 * PG + 64);
    static char stack[64 * 1024] __attribute__((aligned(16)));
    int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                CLONE_SYSVSEM | CLONE_CHILD_CLEARTID;
    start = now_ms();
    int tid = clone(quiet_thread, stack + sizeof stack, flags, NULL, NULL, NULL, tid_word);
    EXPECT(tid > 0);
    /* The thread is gone once the process is back to two threads (main and the
     * handler): the tid word cannot tell. */
    while (threads() != 2 && now_ms() - start < 10000)
        usleep(1000);
    EXPECT_EQ(threads(), 2);
    /* Reading the word now faults it in through the handler: what the handler put
     * there stays, since the exit gave up on the page. */
    EXPECT_EQ(*tid_word, STILL_SET);
    EXPECT_EQ(served.faults, before + 1);
    ok();

    served.stop = 1;
    pthread_join(t, NULL);
    printf("uffd_kwrite: all checks passed\n");
    return 0;
}
