/* hugetrunc: truncating and punching holes in hugetlb files while they are mapped.
 * ftruncate/truncate/O_TRUNC of an MFD_HUGETLB memfd or a hugetlbfs file unmaps every
 * mapping past the new end, shared and private (a private mapping's copy-on-write
 * copies too), so an access there is SIGBUS; the pages go back to the pool and the
 * file's reservations past the end are released; a private mapping keeps its own until
 * munmap, and gets back the reservation of a copy it loses (Linux 6.12's restore).
 * fallocate(PUNCH_HOLE | KEEP_SIZE) does the same inside the file and zeroes the
 * partial pages at its edges; fallocate without PUNCH_HOLE allocates pages. A
 * 1 GiB private file mapping (copy-on-write of a 1 GiB page) when a pool of two 1 GiB
 * pages can be had. HugePages_Free/Rsvd are printed and checked after every step.
 * Prints `hugetrunc: check NAME: ok` per check and exits 1 at the first failure.
 * Runs unchanged on Linux 6.12 as root (run-linux.sh --cpus 2 --nodes 1 --mem 6144),
 * where the same figures hold. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "hugetrunc"
#include "check.h"
#include "seals.h"
#include "sigprobe.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef FALLOC_FL_ZERO_RANGE
#define FALLOC_FL_ZERO_RANGE 0x10
#endif
#define MFD_HUGE_1GB (30U << 26)

#define HPAGE (2L << 20)
#define GPAGE (1L << 30)

#include "sysfiles.h"

static long read_long(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

/* Prints the 2 MiB counters after `step` and checks them against the expected ones. */
static void counters(const char *step, long want_free, long want_rsvd) {
    long free = meminfo("HugePages_Free"), rsvd = meminfo("HugePages_Rsvd");
    printf("hugetrunc: %s: %s: free %ld rsvd %ld\n", current, step, free, rsvd);
    fflush(stdout);
    if (free != want_free)
        fail(step, free);
    if (rsvd != want_rsvd)
        fail(step, rsvd);
}

#define GIB_DIR "/sys/kernel/mm/hugepages/hugepages-1048576kB/"
/* The pool is sized through node 0's knob: the guest has one node (Peios has no
 * global 1 GiB knob; Linux has both). */
#define GIB_NODE0 "/sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages"

/* The same for the 1 GiB pool (its sysfs files: meminfo shows the default size). */
static void gib_counters(const char *step, long want_free, long want_rsvd) {
    long free = read_long(GIB_DIR "free_hugepages"), rsvd = read_long(GIB_DIR "resv_hugepages");
    printf("hugetrunc: %s: %s: 1G free %ld rsvd %ld\n", current, step, free, rsvd);
    fflush(stdout);
    if (free != want_free)
        fail(step, free);
    if (rsvd != want_rsvd)
        fail(step, rsvd);
}

/* The wait status of a child that ran `body(arg)`: its exit code, or 100 + signal. */
static int child_status(int (*body)(void *), void *arg) {
    pid_t pid = fork();
    if (pid == 0)
        _exit(body(arg));
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static int child_reads(void *arg) {
    volatile char *p = arg;
    return *p == 0x7f ? 7 : 0;
}

/* A shared mapping of a memfd cut short: the pages past the end leave the mapping and
 * the pool gets them back; growing again gives holes. */
static void shared_truncate(long pool) {
    begin("truncate-unmaps-shared-pages-past-the-end");
    int fd = memfd_create("t", MFD_HUGETLB);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    char *s = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    counters("mapped", pool, 3);
    s[0] = 'a';
    s[HPAGE] = 'b';
    counters("two-written", pool - 2, 1);
    EXPECT_EQ(ftruncate(fd, HPAGE), 0);
    counters("cut-to-one", pool - 1, 0);
    EXPECT_EQ(probe(s + HPAGE), -2);
    EXPECT_EQ(probe(s + 2 * HPAGE), -2);
    EXPECT_EQ(child_status(child_reads, s + HPAGE), 100 + SIGBUS);
    EXPECT_EQ(s[0], 'a');
    counters("sigbus-past-the-end", pool - 1, 0);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    counters("grown-again", pool - 1, 0);
    EXPECT_EQ(probe(s + HPAGE), 0);
    counters("hole-read", pool - 2, 0);
    EXPECT_EQ(munmap(s, 3 * HPAGE), 0);
    close(fd);
    counters("closed", pool, 0);
    ok();
}

/* A private mapping's copy-on-write copies past the new end are unmapped and freed
 * too, their reservations restored; its reservations stay with it until munmap. */
static void private_truncate(long pool) {
    begin("truncate-unmaps-private-copies-past-the-end");
    int fd = memfd_create("p", MFD_HUGETLB);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    char *s = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    s[0] = 'f';
    s[HPAGE] = 'g';
    counters("file-has-two", pool - 2, 0);
    char *p = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    counters("private-mapped", pool - 2, 3);
    EXPECT_EQ(p[0], 'f');
    p[HPAGE] = 'm';
    counters("private-copied-page-1", pool - 3, 2);
    EXPECT_EQ(p[HPAGE], 'm');
    EXPECT_EQ(ftruncate(fd, HPAGE), 0);
    counters("cut-to-one", pool - 1, 3);
    EXPECT_EQ(probe(p + HPAGE), -2);
    EXPECT_EQ(probe(p + 2 * HPAGE), -2);
    EXPECT_EQ(probe(s + HPAGE), -2);
    EXPECT_EQ(p[0], 'f');
    counters("private-sigbus-past-the-end", pool - 1, 3);
    EXPECT_EQ(ftruncate(fd, 0), 0);
    counters("cut-to-nothing", pool, 3);
    EXPECT_EQ(probe(p), -2);
    EXPECT_EQ(munmap(p, 3 * HPAGE), 0);
    counters("private-unmapped", pool, 0);
    EXPECT_EQ(munmap(s, 2 * HPAGE), 0);
    close(fd);
    counters("closed", pool, 0);
    ok();
}

/* truncate(2) by path and open(O_TRUNC) of a hugetlbfs file with a mapping. */
static void hugetlbfs_truncate(long pool) {
    begin("hugetlbfs-truncate-and-o-trunc-unmap");
    mkdir("/tmp/htr", 0755);
    EXPECT_EQ(mount("none", "/tmp/htr", "hugetlbfs", 0, NULL), 0);
    int fd = open("/tmp/htr/ht", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 2 * HPAGE), 0);
    char *s = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    s[0] = 'x';
    s[HPAGE] = 'y';
    counters("written", pool - 2, 0);
    EXPECT_ERR(truncate("/tmp/htr/ht", HPAGE + 4096), EINVAL);
    EXPECT_EQ(truncate("/tmp/htr/ht", HPAGE), 0);
    counters("truncated-by-path", pool - 1, 0);
    EXPECT_EQ(probe(s + HPAGE), -2);
    EXPECT_EQ(s[0], 'x');
    int ro = open("/tmp/htr/ht", O_RDONLY);
    EXPECT(ro >= 0);
    EXPECT_ERR(fallocate(ro, 0, 0, HPAGE), EBADF);
    close(ro);
    int fd2 = open("/tmp/htr/ht", O_RDWR | O_TRUNC);
    EXPECT(fd2 >= 0);
    counters("opened-o-trunc", pool, 0);
    EXPECT_EQ(probe(s), -2);
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 0);
    close(fd2);
    EXPECT_EQ(munmap(s, 2 * HPAGE), 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/htr/ht"), 0);
    EXPECT_EQ(umount2("/tmp/htr", 0), 0);
    counters("unlinked", pool, 0);
    ok();
}

/* fallocate: PUNCH_HOLE | KEEP_SIZE empties whole pages (unmapped from shared and
 * private mappings) and zeroes the partial ones at its edges; plain fallocate
 * allocates pages (growing the file unless KEEP_SIZE); the refusals. */
static void fallocate_checks(long pool) {
    begin("fallocate-punch-hole-and-allocate");
    int fd = memfd_create("f", MFD_HUGETLB | MFD_ALLOW_SEALING);
    EXPECT(fd >= 0);
    EXPECT_EQ(fallocate(fd, 0, 0, 3 * HPAGE), 0);
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 3 * HPAGE);
    counters("allocated-three", pool - 3, 0);
    EXPECT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 3 * HPAGE, 1), 0);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 3 * HPAGE);
    counters("allocated-past-the-end-keep-size", pool - 4, 0);
    /* A writable mapping past the end grows the file over that page, keeping it. */
    char *g = mmap(NULL, 4 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(g != MAP_FAILED);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 4 * HPAGE);
    counters("mapping-grew-over-it", pool - 4, 0);
    EXPECT_EQ(munmap(g, 4 * HPAGE), 0);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    counters("page-past-the-end-dropped", pool - 3, 0);
    char *s = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    counters("mapped-allocated", pool - 3, 0);
    memset(s, 'a', 16);
    memset(s + HPAGE, 'b', 16);
    memset(s + 2 * HPAGE, 'c', 16);
    char *p = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    counters("private-mapped", pool - 3, 3);
    p[HPAGE] = 'm';
    counters("private-copied-page-1", pool - 4, 2);
    /* Refusals first. */
    EXPECT_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, HPAGE), EOPNOTSUPP);
    EXPECT_ERR(fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, HPAGE), EOPNOTSUPP);
    EXPECT_ERR(fallocate(fd, 0x100, 0, HPAGE), EOPNOTSUPP);
    EXPECT_ERR(fallocate(fd, 0, -1, HPAGE), EINVAL);
    EXPECT_ERR(fallocate(fd, 0, 0, 0), EINVAL);
    EXPECT_ERR(fallocate(fd, 0, 0x7fffffffffffffffL, HPAGE), EFBIG);
    EXPECT_ERR(fallocate(-1, 0, 0, HPAGE), EBADF);
    int pipes[2];
    EXPECT_EQ(pipe(pipes), 0);
    EXPECT_ERR(fallocate(pipes[1], 0, 0, 4096), ESPIPE);
    close(pipes[0]);
    close(pipes[1]);
    counters("refused", pool - 4, 2);
    /* A hole over page 1 whole, with the last 4 KiB of page 0 and the first 4 KiB of
     * page 2 zeroed. */
    s[HPAGE - 1] = 'z';
    s[2 * HPAGE + 4095] = 'z';
    s[2 * HPAGE + 4096] = 'k';
    EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, HPAGE - 4096,
                        HPAGE + 8192), 0);
    counters("punched-page-1", pool - 2, 3);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 3 * HPAGE);
    EXPECT_EQ(s[0], 'a');
    EXPECT_EQ(s[HPAGE - 4097], 0);
    EXPECT_EQ(s[HPAGE - 1], 0);
    EXPECT_EQ(s[2 * HPAGE], 0);
    EXPECT_EQ(s[2 * HPAGE + 4095], 0);
    EXPECT_EQ(s[2 * HPAGE + 4096], 'k');
    EXPECT_EQ(p[HPAGE], 0); /* the private copy went too: the hole reads as zeros */
    counters("private-reads-the-hole", pool - 3, 2);
    EXPECT_EQ(s[HPAGE], 0);
    counters("shared-reads-the-hole", pool - 4, 2);
    /* A punch inside one page only zeroes. */
    s[100] = 'q';
    EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64, 64), 0);
    EXPECT_EQ(s[100], 0);
    EXPECT_EQ(s[0], 'a');
    counters("punched-inside-a-page", pool - 4, 2);
    /* Past the end: nothing. */
    EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * HPAGE, HPAGE), 0);
    /* F_SEAL_WRITE refuses a punch, not an allocation. */
    EXPECT_EQ(munmap(s, 3 * HPAGE), 0);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
    EXPECT_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, HPAGE), EPERM);
    counters("sealed", pool - 4, 2);
    EXPECT_EQ(munmap(p, 3 * HPAGE), 0);
    close(fd);
    counters("closed", pool, 0);
    /* Allocation past the free pages. */
    fd = memfd_create("big", MFD_HUGETLB);
    EXPECT(fd >= 0);
    EXPECT_ERR(fallocate(fd, 0, 0, (pool + 1) * HPAGE), ENOSPC);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 0);
    counters("refused-past-the-pool-keeps-what-it-took", 0, 0);
    close(fd);
    counters("closed-again", pool, 0);
    ok();
}

/* MADV_DONTNEED of a private page of the mapping's own (anonymous or a file's copy)
 * frees it and gives its reservation back, as Linux 6.12 does for every unmap of one;
 * a file's page a private mapping reads is only unmapped. */
static void dontneed_restores(long pool) {
    begin("dontneed-restores-a-private-pages-reservation");
    char *a = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    EXPECT(a != MAP_FAILED);
    a[0] = 1;
    counters("anon-faulted", pool - 1, 1);
    EXPECT_EQ(madvise(a, HPAGE, MADV_DONTNEED), 0);
    counters("anon-dontneed", pool, 2);
    EXPECT_EQ(a[0], 0);
    EXPECT_EQ(munmap(a, 2 * HPAGE), 0);
    counters("anon-unmapped", pool, 0);
    int fd = memfd_create("d", MFD_HUGETLB);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 2 * HPAGE), 0);
    char *s = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    s[0] = 'f';
    char *p = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ(p[0], 'f');
    p[HPAGE] = 'm';
    counters("private-read-one-wrote-a-hole", pool - 2, 1);
    EXPECT_EQ(madvise(p, HPAGE, MADV_DONTNEED), 0);
    counters("file-page-dontneed", pool - 2, 1);
    EXPECT_EQ(madvise(p + HPAGE, HPAGE, MADV_DONTNEED), 0);
    counters("own-page-dontneed", pool - 1, 2);
    EXPECT_EQ(p[0], 'f');
    EXPECT_EQ(p[HPAGE], 0);
    EXPECT_EQ(munmap(p, 2 * HPAGE), 0);
    EXPECT_EQ(munmap(s, HPAGE), 0);
    close(fd);
    counters("closed", pool, 0);
    ok();
}

/* MAP_PRIVATE of a 1 GiB hugetlb memfd: the file's page read, copied on the first
 * write, the file unchanged; truncation unmaps the copy. */
static void private_gib(void) {
    begin("private-1g-file-mapping");
    write_file(GIB_NODE0, "2");
    long have = read_long(GIB_NODE0);
    if (have != 2) {
        printf("hugetrunc: skip %s: the 1 GiB pool holds %ld of 2 pages\n", current, have);
        write_file(GIB_NODE0, "0");
        return;
    }
    gib_counters("pool-of-two", 2, 0);
    int fd = memfd_create("g", MFD_HUGETLB | MFD_HUGE_1GB);
    EXPECT(fd >= 0);
    EXPECT_ERR(ftruncate(fd, HPAGE), EINVAL);
    EXPECT_EQ(ftruncate(fd, GPAGE), 0);
    char *s = mmap(NULL, GPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    EXPECT_EQ((long)s % GPAGE, 0);
    s[0] = 'f';
    s[GPAGE - 1] = 'l';
    gib_counters("file-page", 1, 0);
    char *p = mmap(NULL, GPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ((long)p % GPAGE, 0);
    gib_counters("private-mapped", 1, 1);
    EXPECT_EQ(p[GPAGE - 1], 'l');
    gib_counters("private-read", 1, 1);
    p[0] = 'm';
    gib_counters("private-copied", 0, 0);
    EXPECT_EQ(p[0], 'm');
    EXPECT_EQ(p[GPAGE - 1], 'l');
    EXPECT_EQ(p[HPAGE * 300 + 5], 0);
    EXPECT_EQ(s[0], 'f');
    char c = 0;
    EXPECT_EQ(pread(fd, &c, 1, 0), 1);
    EXPECT_EQ(c, 'f');
    EXPECT_ERR(munmap(p + HPAGE, HPAGE), EINVAL);
    EXPECT_EQ(ftruncate(fd, 0), 0);
    gib_counters("truncated", 2, 1);
    EXPECT_EQ(probe(p), -2);
    EXPECT_EQ(probe(s + HPAGE), -2);
    EXPECT_EQ(munmap(p, GPAGE), 0);
    EXPECT_EQ(munmap(s, GPAGE), 0);
    close(fd);
    gib_counters("closed", 2, 0);
    write_file(GIB_NODE0, "0");
    ok();
}

/* madvise(MADV_REMOVE) over a range of a shared hugetlb mapping off huge-page
 * boundaries: Linux 6.12's madvise_remove punches the range's bytes of the file
 * (vfs_fallocate), and hugetlbfs_punch_hole frees the huge pages it covers whole and
 * zeroes the bytes of those it covers in part; 0, no EINVAL. The same for 100 bytes
 * inside one page (madvise rounds the length up to 4 KiB). */
static void madv_remove_unaligned(long pool) {
    begin("madv-remove-off-huge-page-boundaries");
    int fd = memfd_create("r", MFD_HUGETLB);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    char *s = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    for (int p = 0; p < 3; p++)
        memset(s + p * HPAGE, 'a' + p, HPAGE);
    counters("filled", pool - 3, 0);
    EXPECT_EQ(madvise(s + HPAGE - 4096, HPAGE + 8192, MADV_REMOVE), 0);
    counters("removed-page-1", pool - 2, 0);
    EXPECT_EQ(s[0], 'a');
    EXPECT_EQ(s[HPAGE - 4097], 'a');
    EXPECT_EQ(s[HPAGE - 4096], 0);
    EXPECT_EQ(s[HPAGE - 1], 0);
    EXPECT_EQ(s[2 * HPAGE], 0);
    EXPECT_EQ(s[2 * HPAGE + 4095], 0);
    EXPECT_EQ(s[2 * HPAGE + 4096], 'c');
    counters("edges-read", pool - 2, 0);
    EXPECT_EQ(s[HPAGE], 0); /* a hole: a new zeroed page */
    counters("hole-read", pool - 3, 0);
    EXPECT_EQ(madvise(s + 4096, 100, MADV_REMOVE), 0);
    EXPECT_EQ(s[4095], 'a');
    EXPECT_EQ(s[4096], 0);
    EXPECT_EQ(s[8191], 0);
    EXPECT_EQ(s[8192], 'a');
    counters("zeroed-inside-page-0", pool - 3, 0);
    EXPECT_EQ(munmap(s, 3 * HPAGE), 0);
    close(fd);
    counters("closed", pool, 0);
    ok();
}

/* madvise(MADV_REMOVE) through an anonymous shared MAP_HUGETLB mapping: Linux 6.12
 * backs one with a file of its own (hugetlb_file_setup), so the punch frees the page
 * for every process sharing it (a fork child reads zeros there too), the reservation
 * of that index goes with it, and a later touch takes a new zeroed page. */
static void madv_remove_anonymous_shared(long pool) {
    begin("madv-remove-anonymous-shared");
    char *s = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    EXPECT(s != MAP_FAILED);
    counters("mapped", pool, 3);
    for (int p = 0; p < 3; p++)
        memset(s + p * HPAGE, 'a' + p, HPAGE);
    counters("filled", pool - 3, 0);
    int go[2];
    EXPECT_EQ(pipe(go), 0);
    pid_t child = fork();
    EXPECT(child >= 0);
    if (child == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        /* Page 1 is a hole now (a new zeroed page), its neighbours kept their bytes. */
        _exit(s[HPAGE] == 0 && s[2 * HPAGE - 1] == 0 && s[0] == 'a' && s[2 * HPAGE] == 'c' ? 0 : 1);
    }
    EXPECT_EQ(madvise(s + HPAGE, HPAGE, MADV_REMOVE), 0);
    counters("removed-page-1", pool - 2, 0);
    EXPECT_EQ(write(go[1], "g", 1), 1);
    int status;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    counters("child-read-the-hole", pool - 3, 0);
    EXPECT_EQ(s[HPAGE + 4096], 0);
    EXPECT_EQ(s[0] + s[2 * HPAGE], 'a' + 'c');
    EXPECT_EQ(munmap(s, 3 * HPAGE), 0);
    counters("unmapped", pool, 0);
    close(go[0]);
    close(go[1]);
    ok();
}

int main(void) {
    const long pool = 6;
    char want[8];
    snprintf(want, sizeof want, "%ld", pool);
    if (write_file("/proc/sys/vm/nr_hugepages", want) < 0 || meminfo("HugePages_Total") != pool) {
        printf("hugetrunc: cannot fill the 2 MiB pool with %ld pages\n", pool);
        return 1;
    }
    shared_truncate(pool);
    private_truncate(pool);
    hugetlbfs_truncate(pool);
    fallocate_checks(pool);
    dontneed_restores(pool);
    madv_remove_unaligned(pool);
    madv_remove_anonymous_shared(pool);
    write_file("/proc/sys/vm/nr_hugepages", "0");
    private_gib();
    printf("hugetrunc: all checks passed\n");
    return 0;
}
