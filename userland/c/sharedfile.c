/* A shared read-only mapping of a disk file larger than RAM, read end to end twice.
 *
 * Usage: sharedfile [PATH] (default /mnt/seq.bin, the pattern file of tools/mkext4.sh:
 * the 64-bit word at byte offset o is o * 0x9e3779b97f4a7c15 ^ 0x5eed). The file is
 * mapped MAP_SHARED, PROT_READ and every word of every page is checked, twice: the
 * kernel must drop the cold page-cache pages the mapping holds (unmapping them first)
 * and read them back from the disk, byte-identical, instead of running out of memory.
 * After the first pass part of the file's start is not resident (mincore), so the
 * second pass reads it from the disk again. Runs the same on Linux 6.12
 * (run-linux.sh --mem 256 --disk IMAGE). */
#define PROG "sharedfile"
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define PAGE 4096UL

static uint64_t word_at(uint64_t offset) { return (offset * 0x9e3779b97f4a7c15ULL) ^ 0x5eed; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static long major_faults(void) {
    struct rusage ru;
    EXPECT_EQ(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_majflt;
}

/* Checks every word of a mapping of the file from byte `start`; returns the first bad
 * offset in the mapping, or -1. */
static long check_from(const volatile uint64_t *map, size_t start, size_t size) {
    for (size_t page = 0; page < size / PAGE; page++) {
        size_t base = page * PAGE;
        for (size_t i = 0; i < PAGE / 8; i++) {
            uint64_t off = base + i * 8;
            if (map[off / 8] != word_at(start + off))
                return (long)off;
        }
    }
    return -1;
}

static long check_all(const volatile uint64_t *map, size_t size) { return check_from(map, 0, size); }

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/mnt/seq.bin";

    begin("map");
    int fd = open(path, O_RDONLY);
    EXPECT(fd >= 0);
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    size_t size = (size_t)st.st_size & ~(PAGE - 1);
    long ram = sysconf(_SC_PHYS_PAGES);
    EXPECT(ram > 0);
    /* The point of the test: more file than memory. */
    EXPECT((long)(size / PAGE) > ram);
    const volatile uint64_t *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT(map != MAP_FAILED);
    /* A descriptor opened read-only cannot give a shared writable mapping. */
    EXPECT_ERR((long)mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EACCES);
    EXPECT_ERR(mprotect((void *)map, PAGE, PROT_READ | PROT_WRITE), EACCES);
    ok();

    begin("readahead_advice");
    /* The file is cold (nothing of it read since boot). 4 MiB of it read in order
     * under MADV_RANDOM: every page is its own read, a major fault each. The next
     * 4 MiB read in order without advice: the fault readahead keeps ahead of the
     * reader, which waits for the disk a few times only (Linux 6.12: 1 or 2). */
    size_t span = 4UL << 20;
    const volatile uint64_t *rnd = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT(rnd != MAP_FAILED);
    EXPECT_EQ(madvise((void *)rnd, span, MADV_RANDOM), 0);
    long m0 = major_faults();
    EXPECT_EQ(check_from(rnd, 0, span), -1);
    long random_majors = major_faults() - m0;
    const volatile uint64_t *seq = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, span);
    EXPECT(seq != MAP_FAILED);
    m0 = major_faults();
    EXPECT_EQ(check_from(seq, span, span), -1);
    long seq_majors = major_faults() - m0;
    EXPECT(random_majors >= (long)(span / PAGE) * 9 / 10);
    EXPECT(seq_majors <= (long)(span / PAGE) / 16);
    EXPECT_EQ(munmap((void *)rnd, span), 0);
    EXPECT_EQ(munmap((void *)seq, span), 0);
    printf(PROG ": 4 MiB in order: %ld major faults under MADV_RANDOM, %ld without advice\n",
           random_majors, seq_majors);
    ok();

    begin("pass1");
    double t0 = now();
    EXPECT_EQ(check_all(map, size), -1);
    ok();

    begin("dropped_after_pass1");
    /* Pass 1 could not keep the file resident: the excess was dropped, some of it
     * from the first 64 MiB (read first), which pass 2 must read from the disk again. */
    size_t pages = size / PAGE;
    unsigned char *vec = malloc(pages);
    EXPECT(vec != NULL);
    EXPECT_EQ(mincore((void *)map, size, vec), 0);
    size_t resident = 0, head_dropped = 0, head = (64UL << 20) / PAGE;
    for (size_t i = 0; i < pages; i++) {
        resident += vec[i] & 1;
        if (i < head && !(vec[i] & 1))
            head_dropped++;
    }
    EXPECT(pages - resident >= pages - (size_t)ram);
    EXPECT(head_dropped > 0);
    ok();

    begin("pass2");
    double t1 = now();
    long before = major_faults();
    EXPECT_EQ(check_all(map, size), -1);
    long refaulted = major_faults() - before;
    double t2 = now();
    /* The fault readahead keeps ahead of the reader: a major fault is a page no
     * window had read (reclaim took it first, or a window ran out); one per 32-page
     * window would be 2,560 (Linux 6.12: 8; this kernel: under 100). */
    EXPECT(refaulted <= (long)(pages / 256));
    ok();

    begin("resident_after_pass2");
    EXPECT_EQ(mincore((void *)map, size, vec), 0);
    size_t resident2 = 0;
    for (size_t i = 0; i < pages; i++)
        resident2 += vec[i] & 1;
    EXPECT(resident2 < pages);
    EXPECT(resident2 > 0);
    ok();

    printf(PROG ": %zu MiB mapped, %ld pages of RAM; after pass 1 %zu pages resident, %zu of the"
           " first 64 MiB dropped; pass 2 %ld major faults, then %zu resident; passes took %.1f s"
           " and %.1f s\n",
           size >> 20, ram, resident, head_dropped, refaulted, resident2, t1 - t0, t2 - t1);
    EXPECT_EQ(munmap((void *)map, size), 0);
    close(fd);
    printf(PROG ": done\n");
    return 0;
}
