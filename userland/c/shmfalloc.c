/* shmfalloc: fallocate(2) on shared memory (a memfd and a /dev/shm file), as Linux's
 * shmem: allocation grows the file (st_size, st_blocks, Shmem in /proc/meminfo),
 * FALLOC_FL_KEEP_SIZE keeps the size (its pages past the end go with a truncation to
 * the same size), a punched hole reads zeros through read(2), through a shared mapping
 * and through another process's shared mapping while a private copy keeps its data,
 * the seals refuse with Linux's errno, and bad modes and ranges get Linux's errno.
 * madvise(MADV_REMOVE) punches the same way (seen from a fork child) with Linux's
 * errnos.
 * Then /proc/self/smaps of a private file mapping after writes (its private copies
 * are Anonymous). Prints `shmfalloc: check NAME: ok` per check and exits 1 at the
 * first failure; the same binary passes on Linux 6.12. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "shmfalloc"
#include "check.h"
#include "seals.h"
#include "sigprobe.h"
#pragma GCC diagnostic ignored "-Wunused-function" /* sysfiles.h's write_file */
#include "sysfiles.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#define FALLOC_FL_COLLAPSE_RANGE 0x08
#define FALLOC_FL_ZERO_RANGE 0x10
#define PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define PAGE 4096L

/* The raw call: errno as the kernel gave it (no libc emulation). */
static long falloc(int fd, int mode, long offset, long len) {
    return syscall(SYS_fallocate, fd, mode, offset, len);
}

static struct stat fst(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail("fstat", -1);
    return st;
}

static int new_memfd(const char *name, unsigned flags) {
    int fd = memfd_create(name, flags);
    if (fd < 0)
        fail("memfd_create", fd);
    return fd;
}

/* Byte `p + 1` over page p, for pages [0, pages). */
static void fill_pages(int fd, int pages) {
    char buf[PAGE];
    for (int p = 0; p < pages; p++) {
        memset(buf, p + 1, sizeof buf);
        if (pwrite(fd, buf, sizeof buf, p * PAGE) != PAGE)
            fail("pwrite", p);
    }
}

/* Whether `len` bytes at `off` read through read(2) are all `want`. */
static int reads_as(int fd, long off, long len, int want) {
    char buf[PAGE];
    while (len > 0) {
        long n = len < PAGE ? len : PAGE;
        if (pread(fd, buf, n, off) != n)
            return 0;
        for (long i = 0; i < n; i++)
            if (buf[i] != (char)want)
                return 0;
        off += n;
        len -= n;
    }
    return 1;
}

static int all_bytes(const char *p, long len, int want) {
    for (long i = 0; i < len; i++)
        if (p[i] != (char)want)
            return 0;
    return 1;
}

/* Whether a change of Shmem (kB) is `want` give or take 256 kB: Linux's counter is
 * summed from per-CPU deltas that lag by up to a threshold each. */
static int near(long got, long want) {
    if (got < want - 256 || got > want + 256) {
        printf(PROG ": Shmem moved by %ld kB, %ld expected\n", got, want);
        return 0;
    }
    return 1;
}

static int on_peios(void) {
    struct utsname u;
    return uname(&u) == 0 && !strcmp(u.sysname, "Peios");
}

static void memfd_grows(void) {
    begin("memfd-fallocate-grows-size-blocks-and-shmem");
    int fd = new_memfd("falloc", 0);
    long before = meminfo("Shmem");
    EXPECT_EQ(falloc(fd, 0, 0, 4 << 20), 0);
    long after = meminfo("Shmem");
    struct stat st = fst(fd);
    EXPECT_EQ(st.st_size, 4 << 20);
    EXPECT_EQ(st.st_blocks, (4 << 20) / 512);
    EXPECT(near(after - before, 4096));
    EXPECT(reads_as(fd, 0, 4 << 20, 0));
    /* Off page boundaries: the size is the byte, the blocks whole pages. */
    int odd = new_memfd("odd", 0);
    EXPECT_EQ(falloc(odd, 0, 100, 10), 0);
    EXPECT_EQ(fst(odd).st_size, 110);
    EXPECT_EQ(fst(odd).st_blocks, 8);
    /* Allocating again changes nothing; written bytes stay. */
    EXPECT_EQ(pwrite(fd, "kept", 4, 5000), 4);
    EXPECT_EQ(falloc(fd, 0, 0, 8192), 0);
    EXPECT(reads_as(fd, 5000, 1, 'k'));
    EXPECT_EQ(fst(fd).st_blocks, (4 << 20) / 512);
    close(odd);
    close(fd);
    EXPECT(near(meminfo("Shmem") - before, 0));
    ok();
}

static void keep_size(void) {
    begin("keep-size-keeps-the-size");
    int fd = new_memfd("keep", 0);
    EXPECT_EQ(ftruncate(fd, PAGE), 0);
    EXPECT_EQ(falloc(fd, FALLOC_FL_KEEP_SIZE, 0, 16 * PAGE), 0);
    struct stat st = fst(fd);
    EXPECT_EQ(st.st_size, PAGE);
    EXPECT_EQ(st.st_blocks, 16 * 8);
    /* Growing over them keeps them (and they read as zeros). */
    EXPECT_EQ(ftruncate(fd, 4 * PAGE), 0);
    EXPECT_EQ(fst(fd).st_blocks, 16 * 8);
    EXPECT(reads_as(fd, 0, 4 * PAGE, 0));
    /* A truncation to the same size drops the pages past the end. */
    EXPECT_EQ(ftruncate(fd, 4 * PAGE), 0);
    EXPECT_EQ(fst(fd).st_blocks, 4 * 8);
    close(fd);
    ok();
}

static void dev_shm_grows(void) {
    begin("dev-shm-file-fallocate");
    const char *path = "/dev/shm/shmfalloc.test";
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT(fd >= 0);
    long before = meminfo("Shmem");
    EXPECT_EQ(falloc(fd, 0, 0, 1024 * PAGE), 0);
    long after = meminfo("Shmem");
    EXPECT(near(after - before, 4096));
    struct stat st;
    EXPECT_EQ(stat(path, &st), 0);
    EXPECT_EQ(st.st_size, 1024 * PAGE);
    EXPECT_EQ(st.st_blocks, 1024 * 8);
    EXPECT_EQ(falloc(fd, FALLOC_FL_KEEP_SIZE, 1024 * PAGE, 64 * PAGE), 0);
    EXPECT_EQ(stat(path, &st), 0);
    EXPECT_EQ(st.st_size, 1024 * PAGE);
    EXPECT_EQ(st.st_blocks, 1088 * 8);
    EXPECT_EQ(falloc(fd, PUNCH, 0, 1088 * PAGE), 0);
    EXPECT_EQ(fst(fd).st_blocks, 0);
    EXPECT_EQ(fst(fd).st_size, 1024 * PAGE);
    EXPECT(near(meminfo("Shmem") - before, 0));
    /* A read-only descriptor may not. */
    int ro = open(path, O_RDONLY);
    EXPECT(ro >= 0);
    EXPECT_ERR(falloc(ro, 0, 0, PAGE), EBADF);
    close(ro);
    close(fd);
    EXPECT_EQ(unlink(path), 0);
    ok();
}

static void punch_hole(void) {
    begin("punch-hole-zeros-read-shared-maps-keeps-private-copy");
    int fd = new_memfd("punch", 0);
    fill_pages(fd, 4);
    char *shared = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *private = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(shared != MAP_FAILED && private != MAP_FAILED);
    EXPECT_EQ(shared[2 * PAGE], 3);
    private[PAGE] = 'P';          /* page 1: the mapping's own copy */
    EXPECT_EQ(private[2 * PAGE], 3); /* page 2: the file's page, mapped */
    int go[2], done[2];
    EXPECT_EQ(pipe(go), 0);
    EXPECT_EQ(pipe(done), 0);
    pid_t child = fork();
    if (child == 0) {
        /* The child's shared mapping holds pages 1 and 2 before the punch. */
        int ok_ = shared[PAGE] == 2 && shared[2 * PAGE] == 3;
        char c;
        if (write(done[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(3);
        ok_ = ok_ && all_bytes(shared + PAGE, 2 * PAGE, 0) && shared[0] == 1;
        _exit(ok_ ? 0 : 2);
    }
    char c;
    EXPECT_EQ(read(done[0], &c, 1), 1);
    /* Bytes 100.. of page 0, pages 1 and 2 whole, the first 10 bytes of page 3. */
    EXPECT_EQ(falloc(fd, PUNCH, 100, 3 * PAGE + 10 - 100), 0);
    struct stat st = fst(fd);
    EXPECT_EQ(st.st_size, 4 * PAGE);
    EXPECT_EQ(st.st_blocks, 2 * 8);
    EXPECT_EQ(write(go[1], "g", 1), 1);
    int status;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(reads_as(fd, 0, 100, 1));
    EXPECT(reads_as(fd, 100, 3 * PAGE + 10 - 100, 0));
    EXPECT(reads_as(fd, 3 * PAGE + 10, PAGE - 10, 4));
    EXPECT(all_bytes(shared, 100, 1));
    EXPECT(all_bytes(shared + 100, 3 * PAGE + 10 - 100, 0));
    EXPECT(all_bytes(shared + 3 * PAGE + 10, PAGE - 10, 4));
    EXPECT_EQ(private[PAGE], 'P');
    EXPECT(all_bytes(private + PAGE + 1, PAGE - 1, 2));
    EXPECT(all_bytes(private + 2 * PAGE, PAGE, 0));
    EXPECT(all_bytes(private + 100, PAGE - 100, 0));
    /* A write through the shared mapping after the punch is the file's again. */
    shared[2 * PAGE] = 'S';
    EXPECT(reads_as(fd, 2 * PAGE, 1, 'S'));
    /* A hole within one page, and one past the end (nothing there). */
    EXPECT_EQ(falloc(fd, PUNCH, 3 * PAGE + 20, 5), 0);
    EXPECT(reads_as(fd, 3 * PAGE + 20, 5, 0) && reads_as(fd, 3 * PAGE + 25, 1, 4));
    EXPECT_EQ(falloc(fd, PUNCH, 100 * PAGE, PAGE), 0);
    EXPECT_EQ(fst(fd).st_size, 4 * PAGE);
    munmap(shared, 4 * PAGE);
    munmap(private, 4 * PAGE);
    close(fd);
    ok();
}

/* ftruncate unmaps what lies past the new end from every mapping, a private
 * mapping's own copies included (Linux's even_cows): each access there is SIGBUS,
 * in this process and in a fork child; growing again reads zeros. */
static void truncate_unmaps(void) {
    begin("truncate-unmaps-shared-pages-and-private-copies-past-the-end");
    int fd = new_memfd("trunc", 0);
    fill_pages(fd, 4);
    char *shared = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *private = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(shared != MAP_FAILED && private != MAP_FAILED);
    for (int p = 0; p < 4; p++)
        EXPECT_EQ(shared[p * PAGE], p + 1);
    private[3 * PAGE] = 'P'; /* its own copy of page 3 */
    EXPECT_EQ(private[2 * PAGE], 3);
    int go[2];
    EXPECT_EQ(pipe(go), 0);
    pid_t child = fork();
    if (child == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(10);
        _exit(probe(shared + 2 * PAGE) == -2 && probe(private + 3 * PAGE) == -2 &&
                      probe(shared + PAGE) == 2
                  ? 0
                  : 11);
    }
    EXPECT_EQ(ftruncate(fd, 2 * PAGE), 0);
    EXPECT_EQ(write(go[1], "g", 1), 1);
    EXPECT_EQ(probe(shared + 2 * PAGE), -2);
    EXPECT_EQ(probe(shared + 3 * PAGE), -2);
    EXPECT_EQ(probe(private + 2 * PAGE), -2);
    EXPECT_EQ(probe(private + 3 * PAGE), -2); /* the copy went too */
    EXPECT_EQ(probe(shared + PAGE), 2);
    int status;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(ftruncate(fd, 4 * PAGE), 0);
    EXPECT(all_bytes(shared + 2 * PAGE, 2 * PAGE, 0));
    EXPECT(all_bytes(private + 2 * PAGE, 2 * PAGE, 0));
    munmap(shared, 4 * PAGE);
    munmap(private, 4 * PAGE);
    close(go[0]);
    close(go[1]);
    close(fd);
    ok();
}

static void seals(void) {
    begin("seals-refuse-with-eperm");
    int fd = new_memfd("sealed", MFD_ALLOW_SEALING);
    fill_pages(fd, 4);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW), 0);
    EXPECT_ERR(falloc(fd, 0, 0, 5 * PAGE), EPERM);
    EXPECT_ERR(falloc(fd, FALLOC_FL_KEEP_SIZE, 4 * PAGE, 1), EPERM);
    EXPECT_EQ(falloc(fd, 0, 0, 4 * PAGE), 0);
    EXPECT_EQ(falloc(fd, PUNCH, 0, PAGE), 0);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    EXPECT_EQ(falloc(fd, PUNCH, PAGE, PAGE), 0);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
    EXPECT_ERR(falloc(fd, PUNCH, 2 * PAGE, PAGE), EPERM);
    EXPECT(reads_as(fd, 2 * PAGE, PAGE, 3));
    /* Allocation inside the size writes nothing: allowed under F_SEAL_WRITE. */
    EXPECT_EQ(falloc(fd, 0, 0, 4 * PAGE), 0);
    EXPECT_EQ(fst(fd).st_size, 4 * PAGE);
    close(fd);
    int fw = new_memfd("future", MFD_ALLOW_SEALING);
    fill_pages(fw, 2);
    EXPECT_EQ(fcntl(fw, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
    EXPECT_ERR(falloc(fw, PUNCH, 0, PAGE), EPERM);
    EXPECT_EQ(falloc(fw, 0, 0, 8 * PAGE), 0);
    EXPECT_EQ(fst(fw).st_size, 8 * PAGE);
    EXPECT(reads_as(fw, 0, PAGE, 1));
    close(fw);
    ok();
}

/* A seal racing punches. One thread punches the pages of a memfd one by one (with
 * fallocate(PUNCH_HOLE), or with madvise(MADV_REMOVE) through a shared mapping made
 * before F_SEAL_FUTURE_WRITE, which leaves existing mappings writable), the other
 * adds F_SEAL_WRITE (or F_SEAL_FUTURE_WRITE), then reads every page: once the seal
 * has returned no punch gets through, so what it read stays (a punch that checked the
 * seals before and punched after would zero a page), the puncher's first EPERM comes
 * at a page it had not punched and every page from there on keeps its data. Linux
 * 6.12 holds the inode lock in both shmem_fallocate and memfd_add_seals: the same.
 * The same race with pwrite(2) writing zeros over the pages one by one: no write
 * lands once F_SEAL_WRITE has returned (Linux checks the seals in shmem_write_begin,
 * under the inode lock the write holds throughout). */
#define RACE_PAGES 512

struct race {
    int fd;
    char *map; /* MADV_REMOVE through it, or NULL for fallocate */
    int writes; /* pwrite zeros instead of punching */
    volatile int started;
    volatile int progress; /* pages zeroed so far */
    int stopped_at; /* first page refused (EPERM), RACE_PAGES if none */
    int bad_errno;
};

/* Zeros page `p` the race's way: 0 or -1 with errno. */
static long race_zero(struct race *r, int p) {
    static const char zeros[PAGE];
    if (r->writes)
        return pwrite(r->fd, zeros, PAGE, (long)p * PAGE) == PAGE ? 0 : -1;
    return r->map ? madvise(r->map + p * PAGE, PAGE, MADV_REMOVE)
                  : falloc(r->fd, PUNCH, p * PAGE, PAGE);
}

static void *race_puncher(void *arg) {
    struct race *r = arg;
    r->stopped_at = RACE_PAGES;
    for (int p = 0; p < RACE_PAGES; p++) {
        r->started = 1;
        long ret = race_zero(r, p);
        r->progress = p + 1;
        if (ret != 0) {
            if (errno != EPERM)
                r->bad_errno = errno;
            r->stopped_at = p;
            /* From now on every punch is refused. */
            for (int q = p; q < RACE_PAGES; q++) {
                long again = race_zero(r, q);
                if (again == 0 || errno != EPERM)
                    r->bad_errno = again == 0 ? -1 : errno;
            }
            break;
        }
    }
    return NULL;
}

static void page_marks(int fd, char *marks) {
    for (int p = 0; p < RACE_PAGES; p++)
        if (pread(fd, &marks[p], 1, (long)p * PAGE) != 1)
            fail("pread", p);
}

/* `writes`: the pwrite race, else the punch race (fallocate and MADV_REMOVE in turn). */
static void seal_races(const char *name, int writes) {
    begin(name);
    static char seen[RACE_PAGES], after[RACE_PAGES];
    int mid_race = 0;
    for (int round = 0; round < 40; round++) {
        int madv = !writes && (round & 1);
        int fd = new_memfd("race", MFD_ALLOW_SEALING);
        char buf[PAGE];
        for (int p = 0; p < RACE_PAGES; p++) {
            memset(buf, (p % 127) + 1, sizeof buf);
            if (pwrite(fd, buf, PAGE, (long)p * PAGE) != PAGE)
                fail("pwrite", p);
        }
        struct race r = {.fd = fd, .map = NULL, .writes = writes};
        if (madv) {
            r.map = mmap(NULL, RACE_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            EXPECT(r.map != MAP_FAILED);
        }
        pthread_t t;
        EXPECT_EQ(pthread_create(&t, NULL, race_puncher, &r), 0);
        /* The seal comes after 0 to 36 pages zeroed, by round. */
        while (!r.started || r.progress < round % 10 * 4)
            ;
        EXPECT_EQ(fcntl(fd, F_ADD_SEALS, madv ? F_SEAL_FUTURE_WRITE : F_SEAL_WRITE), 0);
        page_marks(fd, seen);
        EXPECT_EQ(pthread_join(t, NULL), 0);
        EXPECT_EQ(r.bad_errno, 0);
        page_marks(fd, after);
        for (int p = 0; p < RACE_PAGES; p++) {
            if (after[p] != seen[p]) {
                printf(PROG ": round %d page %d: %d after the seal, %d now\n", round, p, seen[p],
                       after[p]);
                fail(writes ? "a write after the seal returned" : "a punch after the seal returned",
                     p);
            }
            int want = p < r.stopped_at ? 0 : (p % 127) + 1;
            if (after[p] != want) {
                printf(PROG ": round %d page %d: %d, %d expected (stopped at %d)\n", round, p,
                       after[p], want, r.stopped_at);
                fail("pages zeroed are those before the first EPERM", p);
            }
        }
        mid_race += r.stopped_at > 0 && r.stopped_at < RACE_PAGES;
        if (r.map)
            munmap(r.map, RACE_PAGES * PAGE);
        close(fd);
    }
    printf(PROG ": %d of 40 seals landed mid-loop\n", mid_race);
    EXPECT(mid_race > 0);
    ok();
}

/* read(2) of a hole allocates nothing: a 64 MiB sparse memfd (and a /dev/shm file)
 * read from end to end reads zeros, and st_blocks stays 0, Shmem does not grow and
 * MemFree does not drop by the 64 MiB (Linux 6.12 copies ZERO_PAGE for a hole:
 * shmem_file_read_iter with SGP_READ). */
static void read_hole_allocates_nothing(void) {
    begin("read-of-a-hole-allocates-nothing");
    const long size = 64L << 20;
    static char buf[64 * 1024];
    for (int named = 0; named < 2; named++) {
        int fd = named ? open("/dev/shm/shmfalloc-sparse", O_RDWR | O_CREAT | O_TRUNC, 0600)
                       : new_memfd("sparse", 0);
        EXPECT(fd >= 0);
        if (named)
            EXPECT_EQ(unlink("/dev/shm/shmfalloc-sparse"), 0);
        EXPECT_EQ(ftruncate(fd, size), 0);
        EXPECT_EQ(pwrite(fd, "w", 1, size / 2), 1); /* one page written */
        long shmem = meminfo("Shmem"), free_kb = meminfo("MemFree");
        long total = 0, nonzero = 0, n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            for (long i = 0; i < n; i++)
                nonzero += buf[i] != 0;
            total += n;
        }
        EXPECT_EQ(n, 0);
        EXPECT_EQ(total, size);
        EXPECT_EQ(nonzero, 1);
        EXPECT_EQ(fst(fd).st_blocks, 8);
        EXPECT(near(meminfo("Shmem") - shmem, 0));
        long dropped = free_kb - meminfo("MemFree");
        if (dropped > 16 * 1024) {
            printf(PROG ": MemFree dropped by %ld kB reading a hole\n", dropped);
            fail("MemFree drop under 16 MiB", dropped);
        }
        close(fd);
    }
    ok();
}

/* userfaultfd's UFFD_EVENT_REMOVE comes before the hole: Linux 6.12's madvise_remove
 * calls userfaultfd_remove (which queues the event and waits until the handler has
 * read it) before vfs_fallocate punches. So while the event is pending (the uffd
 * polls readable) madvise has not returned and a second mapping of the file, and
 * read(2), still see the old bytes; once the handler reads the event the punch goes
 * on and madvise returns 0 with the range reading zeros. */
struct uffd_api_arg { uint64_t api, features, ioctls; };
struct uffd_register_arg { uint64_t start, len, mode, ioctls; };
struct uffd_message {
    uint8_t event, reserved1;
    uint16_t reserved2;
    uint32_t reserved3;
    uint64_t arg[3];
};
#define UFFD_API_VERSION 0xAA
#define UFFDIO_API_CMD 0xc018aa3fUL
#define UFFDIO_REGISTER_CMD 0xc020aa00UL
#define UFFD_FEATURE_REMOVE_EVENTS (1 << 3)
#define UFFD_FEATURE_MINOR_SHMEM_FAULTS (1 << 10)
#define UFFD_MODE_MINOR 4 /* shared memory's mode (missing mode is anonymous only here) */
#define UFFD_MSG_REMOVE 0x15

struct remover {
    char *at;
    long len;
    int advice;
    volatile int done;
    long ret;
    int err;
};

/* A thread's madvise(at, len, advice). */
static void *advise_range(void *arg) {
    struct remover *r = arg;
    r->ret = madvise(r->at, r->len, r->advice);
    r->err = errno;
    r->done = 1;
    return NULL;
}

/* The 4 pages at `a` are all resident. */
static void all_resident(char *a) {
    unsigned char resident[4];
    EXPECT_EQ(mincore(a, 4 * PAGE, resident), 0);
    for (int p = 0; p < 4; p++)
        EXPECT_EQ(resident[p] & 1, 1);
}

/* Reads the pending event of `uffd`, which must be a REMOVE. */
static struct uffd_message remove_event(int uffd) {
    struct uffd_message msg;
    EXPECT_EQ(read(uffd, &msg, sizeof msg), sizeof msg);
    EXPECT_EQ(msg.event, UFFD_MSG_REMOVE);
    return msg;
}

/* A userfaultfd with `features`, registered over [at, at + 4 pages) in `mode`. */
static int uffd_over(char *at, uint64_t features, uint64_t mode) {
    int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    EXPECT(uffd >= 0);
    struct uffd_api_arg api = {.api = UFFD_API_VERSION, .features = features};
    EXPECT_EQ(ioctl(uffd, UFFDIO_API_CMD, &api), 0);
    struct uffd_register_arg reg = {.start = (uintptr_t)at, .len = 4 * PAGE, .mode = mode};
    EXPECT_EQ(ioctl(uffd, UFFDIO_REGISTER_CMD, &reg), 0);
    return uffd;
}

static void uffd_remove_before_punch(void) {
    begin("uffd-remove-event-comes-before-the-punch");
    int fd = new_memfd("uffdremove", 0);
    fill_pages(fd, 4);
    char *a = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *b = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(a != MAP_FAILED && b != MAP_FAILED);
    for (int p = 0; p < 4; p++)
        EXPECT_EQ(a[p * PAGE] + b[p * PAGE], 2 * (p + 1)); /* both mapped */
    int uffd =
        uffd_over(a, UFFD_FEATURE_REMOVE_EVENTS | UFFD_FEATURE_MINOR_SHMEM_FAULTS, UFFD_MODE_MINOR);
    struct remover r = {.at = a + PAGE, .len = 2 * PAGE, .advice = MADV_REMOVE};
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, advise_range, &r), 0);
    struct pollfd pfd = {.fd = uffd, .events = POLLIN};
    EXPECT_EQ(poll(&pfd, 1, 10000), 1);
    /* The event is pending: madvise waits and nothing is punched yet. */
    EXPECT_EQ(r.done, 0);
    EXPECT_EQ(b[PAGE], 2);
    EXPECT_EQ(b[2 * PAGE + PAGE - 1], 3);
    EXPECT(reads_as(fd, PAGE, PAGE, 2));
    EXPECT_EQ(fst(fd).st_blocks, 4 * 8);
    struct uffd_message msg = remove_event(uffd);
    EXPECT_EQ(msg.arg[0], (uintptr_t)(a + PAGE));
    EXPECT_EQ(msg.arg[1], (uintptr_t)(a + 3 * PAGE));
    EXPECT_EQ(pthread_join(t, NULL), 0);
    errno = r.err;
    EXPECT_EQ(r.ret, 0);
    EXPECT_EQ(fst(fd).st_blocks, 2 * 8); /* before b's faults fill the hole again */
    EXPECT(reads_as(fd, PAGE, 2 * PAGE, 0));
    EXPECT(all_bytes(b + PAGE, 2 * PAGE, 0));
    EXPECT_EQ(b[0] + b[3 * PAGE], 1 + 4);
    close(uffd);
    munmap(a, 4 * PAGE);
    munmap(b, 4 * PAGE);
    close(fd);
    ok();
}

/* The same order for MADV_DONTNEED (Linux 6.12's madvise_dontneed_free calls
 * userfaultfd_remove before the zap): while the REMOVE event is pending, madvise has
 * not returned and mincore still finds the private anonymous pages resident; once the
 * handler reads it they go. */
#define UFFD_MODE_MISSING_FAULTS 1
static void uffd_remove_before_dontneed(void) {
    begin("uffd-remove-event-comes-before-dontneed");
    char *a = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(a != MAP_FAILED);
    memset(a, 7, 4 * PAGE);
    int uffd = uffd_over(a, UFFD_FEATURE_REMOVE_EVENTS, UFFD_MODE_MISSING_FAULTS);
    /* A madvise refused before anything is dropped reports nothing. */
    EXPECT_ERR(madvise(a + 1, PAGE, MADV_DONTNEED), EINVAL);
    struct pollfd pfd = {.fd = uffd, .events = POLLIN};
    EXPECT_EQ(poll(&pfd, 1, 0), 0);
    struct remover r = {.at = a + PAGE, .len = 2 * PAGE, .advice = MADV_DONTNEED};
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, advise_range, &r), 0);
    EXPECT_EQ(poll(&pfd, 1, 10000), 1);
    EXPECT_EQ(r.done, 0);
    all_resident(a);
    struct uffd_message msg = remove_event(uffd);
    EXPECT_EQ(msg.arg[0], (uintptr_t)(a + PAGE));
    EXPECT_EQ(msg.arg[1], (uintptr_t)(a + 3 * PAGE));
    EXPECT_EQ(pthread_join(t, NULL), 0);
    errno = r.err;
    EXPECT_EQ(r.ret, 0);
    unsigned char resident[4];
    EXPECT_EQ(mincore(a, 4 * PAGE, resident), 0);
    EXPECT_EQ((resident[0] & 1) * 8 + (resident[1] & 1) * 4 + (resident[2] & 1) * 2 +
                  (resident[3] & 1),
              8 + 1);
    EXPECT_EQ(a[0] + a[3 * PAGE], 14);
    close(uffd);
    munmap(a, 4 * PAGE);
    ok();
}

/* MADV_FREE on a shared file mapping is EINVAL, but only after the REMOVE event:
 * Linux 6.12's madvise_dontneed_free calls userfaultfd_remove before
 * madvise_free_single_vma refuses a VMA that is not anonymous. So a handler sees the
 * event (madvise has not returned meanwhile), and madvise then fails with EINVAL and
 * the pages stay. */
static void uffd_remove_before_free_einval(void) {
    begin("uffd-remove-event-comes-before-madv-free-einval");
    int fd = new_memfd("uffdfree", 0);
    fill_pages(fd, 4);
    char *a = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(a != MAP_FAILED);
    int uffd =
        uffd_over(a, UFFD_FEATURE_REMOVE_EVENTS | UFFD_FEATURE_MINOR_SHMEM_FAULTS, UFFD_MODE_MINOR);
    struct remover r = {.at = a, .len = 4 * PAGE, .advice = MADV_FREE};
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, advise_range, &r), 0);
    struct pollfd pfd = {.fd = uffd, .events = POLLIN};
    EXPECT_EQ(poll(&pfd, 1, 10000), 1);
    EXPECT_EQ(r.done, 0);
    struct uffd_message msg = remove_event(uffd);
    EXPECT_EQ(msg.arg[0], (uintptr_t)a);
    EXPECT_EQ(msg.arg[1], (uintptr_t)(a + 4 * PAGE));
    EXPECT_EQ(pthread_join(t, NULL), 0);
    EXPECT_EQ(r.ret, -1);
    EXPECT_EQ(r.err, EINVAL);
    for (int p = 0; p < 4; p++) /* read(2): a touch of `a` would be a minor fault */
        EXPECT(reads_as(fd, p * PAGE, PAGE, p + 1));
    close(uffd);
    munmap(a, 4 * PAGE);
    close(fd);
    ok();
}

/* The wait for the handler is killable, not interruptible (Linux 6.12's
 * userfaultfd_event_wait_completion sleeps TASK_KILLABLE): a signal with a handler sent
 * to the thread inside madvise(MADV_DONTNEED) while the REMOVE event is unread neither
 * ends the wait nor lets the drop go ahead; the handler runs once madvise has returned
 * 0 after the event was read. */
static volatile int usr1_caught;
static void on_usr1(int sig) {
    (void)sig;
    usr1_caught++;
}

static void uffd_remove_wait_outlasts_a_signal(void) {
    begin("uffd-remove-wait-outlasts-a-signal");
    struct sigaction sa = {.sa_handler = on_usr1}; /* no SA_RESTART */
    EXPECT_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
    usr1_caught = 0;
    char *a = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(a != MAP_FAILED);
    memset(a, 7, 4 * PAGE);
    int uffd = uffd_over(a, UFFD_FEATURE_REMOVE_EVENTS, UFFD_MODE_MISSING_FAULTS);
    struct remover r = {.at = a, .len = 4 * PAGE, .advice = MADV_DONTNEED};
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, advise_range, &r), 0);
    struct pollfd pfd = {.fd = uffd, .events = POLLIN};
    EXPECT_EQ(poll(&pfd, 1, 10000), 1);
    EXPECT_EQ(pthread_kill(t, SIGUSR1), 0);
    struct timespec pause_for = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
    nanosleep(&pause_for, NULL);
    /* Still waiting: not returned, nothing dropped, the handler not run. */
    EXPECT_EQ(r.done, 0);
    EXPECT_EQ(usr1_caught, 0);
    all_resident(a);
    remove_event(uffd);
    EXPECT_EQ(pthread_join(t, NULL), 0);
    errno = r.err;
    EXPECT_EQ(r.ret, 0);
    EXPECT_EQ(usr1_caught, 1);
    unsigned char resident[4];
    EXPECT_EQ(mincore(a, 4 * PAGE, resident), 0);
    for (int p = 0; p < 4; p++)
        EXPECT_EQ(resident[p] & 1, 0);
    close(uffd);
    munmap(a, 4 * PAGE);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGUSR1, &sa, NULL);
    ok();
}

static void bad_arguments(void) {
    begin("bad-modes-and-ranges-errnos");
    int fd = new_memfd("bad", 0);
    EXPECT_ERR(falloc(fd, 0, 0, 0), EINVAL);
    EXPECT_ERR(falloc(fd, 0, 0, -1), EINVAL);
    EXPECT_ERR(falloc(fd, 0, -1, PAGE), EINVAL);
    EXPECT_ERR(falloc(fd, FALLOC_FL_PUNCH_HOLE, 0, PAGE), EOPNOTSUPP);
    EXPECT_ERR(falloc(fd, FALLOC_FL_ZERO_RANGE, 0, PAGE), EOPNOTSUPP);
    EXPECT_ERR(falloc(fd, FALLOC_FL_COLLAPSE_RANGE, 0, PAGE), EOPNOTSUPP);
    /* Linux 6.12 answers every bad combination EOPNOTSUPP (none EINVAL). */
    EXPECT_ERR(falloc(fd, FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, PAGE), EOPNOTSUPP);
    EXPECT_ERR(falloc(fd, FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_PUNCH_HOLE, 0, PAGE), EOPNOTSUPP);
    EXPECT_ERR(falloc(fd, PUNCH | FALLOC_FL_ZERO_RANGE, 0, PAGE), EOPNOTSUPP);
    EXPECT_ERR(falloc(fd, 0x04, 0, PAGE), EOPNOTSUPP);
    EXPECT_ERR(falloc(fd, 0x80, 0, PAGE), EOPNOTSUPP);
    EXPECT_ERR(falloc(fd, 0, INT64_MAX - 10, 100), EFBIG);
    EXPECT_ERR(falloc(fd, PUNCH, INT64_MAX - 10, 100), EFBIG);
    EXPECT_ERR(falloc(9999, 0, 0, PAGE), EBADF);
    int p[2];
    EXPECT_EQ(pipe(p), 0);
    EXPECT_ERR(falloc(p[1], 0, 0, PAGE), ESPIPE);
    EXPECT_ERR(falloc(p[0], 0, 0, PAGE), EBADF);
    EXPECT_ERR(falloc(p[0], FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, PAGE), EOPNOTSUPP);
    close(p[0]);
    close(p[1]);
    int null = open("/dev/null", O_WRONLY);
    EXPECT(null >= 0);
    EXPECT_ERR(falloc(null, 0, 0, PAGE), ENODEV);
    close(null);
    EXPECT_EQ(fst(fd).st_size, 0);
    EXPECT_EQ(fst(fd).st_blocks, 0);
    close(fd);
    ok();
}

#ifndef MADV_REMOVE
#define MADV_REMOVE 9
#endif

/* madvise(MADV_REMOVE) through a shared mapping punches the file (Linux's
 * vfs_fallocate(PUNCH_HOLE | KEEP_SIZE)): read(2) sees zeros, a fork child's shared
 * mapping reads the hole, private copies (the parent's and the child's inherited one)
 * stay, and a private mapping's page of the file goes. */
static void madv_remove(void) {
    begin("madv-remove-punches-the-file-for-every-process");
    int fd = new_memfd("remove", 0);
    fill_pages(fd, 4);
    char *shared = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *private = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(shared != MAP_FAILED && private != MAP_FAILED);
    for (int p = 0; p < 4; p++)
        EXPECT_EQ(shared[p * PAGE], p + 1);
    private[PAGE] = 'P';             /* page 1: the mapping's own copy */
    EXPECT_EQ(private[2 * PAGE], 3); /* page 2: the file's page, mapped */
    int go[2], ready[2];
    EXPECT_EQ(pipe(go), 0);
    EXPECT_EQ(pipe(ready), 0);
    pid_t child = fork();
    if (child == 0) {
        int ok_ = shared[PAGE] == 2 && shared[2 * PAGE] == 3 && private[2 * PAGE] == 3;
        char c;
        if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(3);
        ok_ = ok_ && all_bytes(shared + PAGE, 2 * PAGE, 0) && shared[0] == 1 &&
              shared[3 * PAGE] == 4;
        ok_ = ok_ && private[PAGE] == 'P' && all_bytes(private + PAGE + 1, PAGE - 1, 2);
        ok_ = ok_ && all_bytes(private + 2 * PAGE, PAGE, 0);
        /* The child's write through its shared mapping is the file's again. */
        shared[2 * PAGE] = 'C';
        _exit(ok_ ? 0 : 2);
    }
    char c;
    EXPECT_EQ(read(ready[0], &c, 1), 1);
    EXPECT_EQ(madvise(shared + PAGE, 2 * PAGE, MADV_REMOVE), 0);
    struct stat st = fst(fd);
    EXPECT_EQ(st.st_size, 4 * PAGE);
    EXPECT_EQ(st.st_blocks, 2 * 8);
    EXPECT(reads_as(fd, 0, PAGE, 1));
    EXPECT(reads_as(fd, PAGE, 2 * PAGE, 0));
    EXPECT(reads_as(fd, 3 * PAGE, PAGE, 4));
    EXPECT_EQ(private[PAGE], 'P');
    EXPECT(all_bytes(private + 2 * PAGE, PAGE, 0));
    EXPECT_EQ(write(go[1], "g", 1), 1);
    int status;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(shared[2 * PAGE], 'C');
    EXPECT(reads_as(fd, 2 * PAGE, 1, 'C'));
    munmap(shared, 4 * PAGE);
    munmap(private, 4 * PAGE);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
    close(fd);
    ok();
}

/* MADV_REMOVE's refusals, as Linux 6.12's madvise_remove and shmem_fallocate give
 * them: EINVAL without a file or on a locked mapping, EACCES on a mapping that is not
 * shared and writable (private; a read-only descriptor; a write-sealed memfd's
 * read-only mapping), EPERM under F_SEAL_FUTURE_WRITE; a PROT_READ shared mapping of
 * a writable descriptor may; a hole in the range is ENOMEM after the rest is done. */
static void madv_remove_errnos(void) {
    begin("madv-remove-errnos");
    int fd = new_memfd("rmerr", MFD_ALLOW_SEALING);
    fill_pages(fd, 4);
    char *priv = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    char *anon = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *sanon = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *view = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
    char *locked = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd, PAGE);
    EXPECT(priv != MAP_FAILED && anon != MAP_FAILED && sanon != MAP_FAILED);
    EXPECT(view != MAP_FAILED && locked != MAP_FAILED);
    EXPECT_ERR(madvise(priv, PAGE, MADV_REMOVE), EACCES);
    EXPECT_ERR(madvise(anon, PAGE, MADV_REMOVE), EINVAL);
    EXPECT_ERR(madvise(locked, PAGE, MADV_REMOVE), EINVAL);
    EXPECT_ERR(madvise(view + 1, PAGE, MADV_REMOVE), EINVAL);
    EXPECT(reads_as(fd, 0, PAGE, 1) && reads_as(fd, PAGE, PAGE, 2)); /* nothing punched */
    sanon[0] = 'a';
    EXPECT_EQ(madvise(sanon, PAGE, MADV_REMOVE), 0);
    EXPECT_EQ(sanon[0], 0);
    EXPECT_EQ(view[0], 1);
    EXPECT_EQ(madvise(view, PAGE, MADV_REMOVE), 0);
    EXPECT_EQ(view[0], 0);
    EXPECT(reads_as(fd, 0, PAGE, 0));
    /* A read-only descriptor's shared mapping may not. */
    const char *path = "/dev/shm/shmfalloc.remove";
    unlink(path);
    int rw = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT(rw >= 0);
    fill_pages(rw, 1);
    int ro = open(path, O_RDONLY);
    EXPECT(ro >= 0);
    char *rom = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
    EXPECT(rom != MAP_FAILED);
    EXPECT_ERR(madvise(rom, PAGE, MADV_REMOVE), EACCES);
    EXPECT_EQ(rom[0], 1);
    munmap(rom, PAGE);
    close(ro);
    close(rw);
    EXPECT_EQ(unlink(path), 0);
    /* A hole: the mapped parts are punched, then ENOMEM. */
    char *three = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PAGE);
    EXPECT(three != MAP_FAILED);
    EXPECT_EQ(munmap(three + PAGE, PAGE), 0);
    EXPECT_ERR(madvise(three, 3 * PAGE, MADV_REMOVE), ENOMEM);
    EXPECT(reads_as(fd, PAGE, PAGE, 0));
    EXPECT(reads_as(fd, 2 * PAGE, PAGE, 3));
    EXPECT(reads_as(fd, 3 * PAGE, PAGE, 0));
    fill_pages(fd, 4);
    /* F_SEAL_FUTURE_WRITE leaves the writable mapping but refuses the punch. */
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
    EXPECT_ERR(madvise(three, PAGE, MADV_REMOVE), EPERM);
    EXPECT(reads_as(fd, PAGE, PAGE, 2));
    EXPECT_EQ(three[0], 2);
    munmap(three, PAGE);
    munmap(three + 2 * PAGE, PAGE);
    /* A write-sealed memfd's shared mapping is read-only: EACCES. */
    int sealed = new_memfd("rmsealed", MFD_ALLOW_SEALING);
    fill_pages(sealed, 1);
    EXPECT_EQ(fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE), 0);
    char *sm = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, sealed, 0);
    EXPECT(sm != MAP_FAILED);
    EXPECT_ERR(madvise(sm, PAGE, MADV_REMOVE), EACCES);
    EXPECT_EQ(sm[0], 1);
    munmap(sm, PAGE);
    close(sealed);
    munmap(priv, PAGE);
    munmap(anon, PAGE);
    munmap(sanon, PAGE);
    munmap(view, PAGE);
    munmap(locked, PAGE);
    close(fd);
    ok();
}

/* Peios-only: Linux 6.12 tries such a request page by page into the OOM killer. */
static void never_fits(void) {
    begin("more-than-ram-and-swap-enomem-size-kept");
    if (!on_peios()) {
        printf(PROG ": check %s: ok (skipped: not Peios)\n", current);
        return;
    }
    int fd = new_memfd("huge", 0);
    EXPECT_EQ(ftruncate(fd, PAGE), 0);
    EXPECT_ERR(falloc(fd, 0, 0, 1L << 40), ENOMEM);
    EXPECT_EQ(fst(fd).st_size, PAGE);
    EXPECT_EQ(fst(fd).st_blocks, 0);
    close(fd);
    ok();
}

/* The value of `key` in the smaps block of the mapping at `addr` (kB), or -1. */
static long smaps_value(void *addr, const char *key) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    char line[512];
    char want[32];
    snprintf(want, sizeof want, "%lx-", (unsigned long)addr);
    int in = 0;
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' ')) {
            in = !strncmp(line, want, strlen(want));
            continue;
        }
        if (in && !strncmp(line, key, n) && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static void smaps_private_file(void) {
    begin("smaps-private-file-mapping-copies-are-anonymous");
    /* 64 pages of which 0, 1, 2, 32 and 48 are in the page cache: Linux's fault-around
     * (16 pages) maps a read page's cached neighbours too, and here it has none. */
    int fd = new_memfd("smaps", 0);
    EXPECT_EQ(ftruncate(fd, 64 * PAGE), 0);
    int cached[] = {0, 1, 2, 32, 48};
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(pwrite(fd, "d", 1, cached[i] * PAGE), 1);
    char *m = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(m != MAP_FAILED);
    for (int p = 0; p < 3; p++)
        m[p * PAGE] = 'x'; /* three private copies */
    volatile char sink = m[32 * PAGE] + m[48 * PAGE]; /* two of the file's pages */
    (void)sink;
    const char *keys[] = {"Rss", "Anonymous", "Private_Dirty", "Private_Clean",
                          "Shared_Dirty", "Shared_Clean", "Pss", "Pss_Dirty"};
    enum { N = sizeof keys / sizeof *keys };
    long v[N];
    for (int i = 0; i < N; i++)
        v[i] = smaps_value(m, keys[i]);
    printf(PROG ": smaps private mapping:");
    for (int i = 0; i < N; i++)
        printf(" %s %ld", keys[i], v[i]);
    printf("\n");
    /* Linux 6.12's values: the written shmem pages count as dirty too. */
    EXPECT_EQ(v[0], 20);
    EXPECT_EQ(v[1], 12);
    EXPECT_EQ(v[2], 20);
    EXPECT_EQ(v[3], 0);
    EXPECT_EQ(v[4] + v[5], 0);
    EXPECT_EQ(v[6], 20);
    EXPECT_EQ(v[7], 20);
    /* A shared mapping of the same pages makes the file's two pages shared. */
    char *s = mmap(NULL, 64 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    sink = s[32 * PAGE] + s[48 * PAGE];
    for (int i = 0; i < N; i++)
        v[i] = smaps_value(m, keys[i]);
    printf(PROG ": smaps with a shared mapping too:");
    for (int i = 0; i < N; i++)
        printf(" %s %ld", keys[i], v[i]);
    printf("\n");
    EXPECT_EQ(v[0], 20);
    EXPECT_EQ(v[1], 12);
    EXPECT_EQ(v[2], 12);
    EXPECT_EQ(v[3], 0);
    EXPECT_EQ(v[4], 8);
    EXPECT_EQ(v[5], 0);
    EXPECT_EQ(v[6], 16);
    EXPECT_EQ(v[7], 16);
    munmap(s, 64 * PAGE);
    munmap(m, 64 * PAGE);
    close(fd);
    ok();
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    memfd_grows();
    keep_size();
    dev_shm_grows();
    punch_hole();
    truncate_unmaps();
    seals();
    seal_races("seal-write-races-punch-no-punch-after-the-seal", 0);
    seal_races("seal-write-races-pwrite-no-write-after-the-seal", 1);
    read_hole_allocates_nothing();
    bad_arguments();
    never_fits();
    madv_remove();
    madv_remove_errnos();
    uffd_remove_before_punch();
    uffd_remove_before_dontneed();
    uffd_remove_wait_outlasts_a_signal();
    uffd_remove_before_free_einval();
    smaps_private_file();
    printf(PROG ": all checks passed\n");
    return 0;
}
