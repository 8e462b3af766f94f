/* populate: a large MAP_POPULATE does not hold the CPU for the whole pre-fault. On one
 * CPU, a spinning thread counts the times it gets the CPU back (a gap of over 100 us
 * in the clock between two of its loops) while the main thread is inside mmap(256
 * MiB, MAP_POPULATE): the kernel pre-faults in 2 MiB pieces and lets other threads run
 * between them (Linux's populate calls cond_resched), so that is about once per piece;
 * a kernel that pre-faults in one go gives it the CPU once or twice at most. The
 * mapping comes back fully populated either way. The same for madvise(256 MiB,
 * MADV_POPULATE_WRITE) over a fresh mapping (Linux's madvise_populate calls
 * cond_resched through its page walk too). Prints `populate: check NAME: ok`; exits 1
 * at the first failure. */
#define _GNU_SOURCE
#define PROG "populate"
#include "check.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static atomic_int inside, stop;
static atomic_long resumed;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *spin(void *arg) {
    (void)arg;
    long long last = now_ns();
    while (!atomic_load(&stop)) {
        long long t = now_ns();
        if (t - last > 100000 && atomic_load(&inside))
            atomic_fetch_add(&resumed, 1);
        last = t;
    }
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Every page of `[p, p + len)` is resident. */
static void populated(char *p, size_t len) {
    unsigned char vec[64];
    for (size_t off = 0; off < len; off += 64 * 4096) {
        EXPECT(mincore(p + off, 64 * 4096, vec) == 0);
        for (int i = 0; i < 64; i++)
            EXPECT(vec[i] & 1);
    }
}

int main(void) {
    const size_t len = 256u << 20;
    /* 4 KiB pages only: a huge page's fault may wait for the pool's zeroing task and
     * let the spinner run for its own reasons. */
    EXPECT(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0);
    pthread_t t;
    EXPECT(pthread_create(&t, 0, spin, 0) == 0);
    usleep(20000); /* the spinner is running, or queued behind this thread */

    begin("others-run-during-populate");
    atomic_store(&inside, 1);
    char *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    atomic_store(&inside, 0);
    EXPECT(p != MAP_FAILED);
    long seen = atomic_load(&resumed);
    EXPECT(seen >= 8);
    ok();

    begin("populated-whole");
    populated(p, len);
    ok();
    EXPECT(munmap(p, len) == 0);

    begin("others-run-during-madv-populate");
    char *q = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(q != MAP_FAILED);
    atomic_store(&resumed, 0);
    atomic_store(&inside, 1);
    EXPECT(madvise(q, len, MADV_POPULATE_WRITE) == 0);
    atomic_store(&inside, 0);
    long seen_madvise = atomic_load(&resumed);
    EXPECT(seen_madvise >= 8);
    populated(q, len);
    ok();
    atomic_store(&stop, 1);
    pthread_join(t, 0);
    printf("populate: all checks passed (the spinner ran %ld times inside mmap, %ld inside "
           "madvise)\n", seen, seen_madvise);
    return 0;
}
