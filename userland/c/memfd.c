/* memfd: what shm leaves out. F_SEAL_WRITE against the exact count of writable shared
 * mappings (through splits, mremap, fork and exit), F_SEAL_FUTURE_WRITE and mprotect,
 * memfd_create's exec flags and vm.memfd_noexec, MFD_HUGETLB memfds drawing on the
 * hugetlb pools (HugePages_Free/Rsvd read back at each step), and hugetlbfs mounted
 * with mount(2). Prints `memfd: check NAME: ok` per check and exits 1 at the first
 * failure. Runs unchanged on Linux 6.12 as root (a restricted caller is Peios's
 * restrict-self call there, setuid(nobody) on Linux), where the same values hold. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "memfd"
#include "check.h"
#include "seals.h"
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#define MFD_HUGE_SHIFT 26
#define MFD_HUGE_64KB (16U << MFD_HUGE_SHIFT)
#define MFD_HUGE_2MB (21U << MFD_HUGE_SHIFT)
#define HUGETLBFS_MAGIC 0x958458f6
#define TMPFS_MAGIC 0x01021994

#define PG 4096L
#define HPAGE (2L << 20)


static int add_seals(int fd, int seals) { return fcntl(fd, F_ADD_SEALS, seals); }

#include "sysfiles.h"

static long hp_free(void) { return meminfo("HugePages_Free"); }
static long hp_rsvd(void) { return meminfo("HugePages_Rsvd"); }

static long read_number(const char *path) {
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? strtol(buf, NULL, 10) : -1;
}

static void restrict_self(void) {
    if (syscall(1024) != 0 && setuid(65534) != 0) {
        printf("memfd: cannot restrict\n");
        exit(2);
    }
}

/* Runs `body` in a restricted child; returns its exit status. */
static int in_restricted_child(int (*body)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        restrict_self();
        _exit(body());
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static long mode_of(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    return st.st_mode;
}

static void write_seal_counting(void) {
    begin("write-seal-counts-split-and-moved-mappings");
    int fd = memfd_create("count", MFD_ALLOW_SEALING);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 4 * PG), 0);
    char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ(mprotect(p + PG, PG, PROT_READ), 0); /* three VMAs now */
    EXPECT_ERR(add_seals(fd, F_SEAL_WRITE), EBUSY);
    EXPECT_EQ(munmap(p, 2 * PG), 0);
    EXPECT_EQ(munmap(p + 3 * PG, PG), 0);
    EXPECT_ERR(add_seals(fd, F_SEAL_WRITE), EBUSY); /* page 2 is still mapped */
    char *q = mremap(p + 2 * PG, PG, 2 * PG, MREMAP_MAYMOVE);
    EXPECT(q != MAP_FAILED);
    q[0] = 'm';
    EXPECT_ERR(add_seals(fd, F_SEAL_WRITE), EBUSY);
    /* A private writable mapping never counts. */
    char *priv = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(priv != MAP_FAILED);
    ok();

    begin("write-seal-waits-for-a-forked-childs-mapping");
    int go[2];
    EXPECT_EQ(pipe(go), 0);
    pid_t child = fork();
    if (child == 0) {
        char c;
        close(go[1]);
        q[1] = 'c'; /* the inherited mapping writes the shared page */
        read(go[0], &c, 1);
        _exit(q[0] == 'm' ? 0 : 3);
    }
    close(go[0]);
    EXPECT_EQ(munmap(q, 2 * PG), 0);
    EXPECT_ERR(add_seals(fd, F_SEAL_WRITE), EBUSY); /* the child's copy still counts */
    EXPECT_EQ(write(go[1], "x", 1), 1);
    int st = -1;
    EXPECT_EQ(waitpid(child, &st, 0), child);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char c = 0;
    EXPECT_EQ(pread(fd, &c, 1, 2 * PG + 1), 1);
    EXPECT_EQ(c, 'c');
    EXPECT_EQ(add_seals(fd, F_SEAL_WRITE), 0); /* its exit took the last one away */
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_WRITE);
    EXPECT_ERR(mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EPERM);
    munmap(priv, PG);
    close(fd);
    close(go[1]);
    ok();

    begin("write-seal-ignores-a-dontfork-mapping-in-the-child");
    fd = memfd_create("dontfork", MFD_ALLOW_SEALING);
    EXPECT_EQ(ftruncate(fd, PG), 0);
    p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ(madvise(p, PG, MADV_DONTFORK), 0);
    EXPECT_EQ(pipe(go), 0);
    child = fork();
    if (child == 0) {
        close(go[1]);
        read(go[0], &c, 1);
        _exit(0);
    }
    close(go[0]);
    EXPECT_EQ(munmap(p, PG), 0);
    EXPECT_EQ(add_seals(fd, F_SEAL_WRITE), 0); /* the live child never had it */
    write(go[1], "x", 1);
    waitpid(child, &st, 0);
    close(go[1]);
    close(fd);
    ok();

    begin("future-write-seal-keeps-read-only-maps-read-only");
    fd = memfd_create("future", MFD_ALLOW_SEALING);
    EXPECT_EQ(ftruncate(fd, PG), 0);
    EXPECT_EQ(add_seals(fd, F_SEAL_FUTURE_WRITE), 0);
    char *r = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT(r != MAP_FAILED);
    EXPECT_ERR(mprotect(r, PG, PROT_READ | PROT_WRITE), EACCES);
    priv = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(priv != MAP_FAILED);
    priv[0] = 'p';
    EXPECT_EQ(r[0], 0);
    /* The read-only shared mapping is no writable one: F_SEAL_WRITE goes on. */
    EXPECT_EQ(add_seals(fd, F_SEAL_WRITE), 0);
    munmap(r, PG);
    munmap(priv, PG);
    close(fd);
    ok();
}

static void exec_flags(void) {
    begin("memfd-flags-einval");
    EXPECT_ERR(memfd_create("x", MFD_EXEC | MFD_NOEXEC_SEAL), EINVAL);
    EXPECT_ERR(memfd_create("x", 0x100), EINVAL);
    EXPECT_ERR(memfd_create("x", MFD_HUGE_2MB), EINVAL); /* a size without MFD_HUGETLB */
    ok();

    begin("noexec-seal-mode-and-seals");
    int fd = memfd_create("noexec", MFD_NOEXEC_SEAL);
    EXPECT(fd >= 0);
    EXPECT_EQ(mode_of(fd), S_IFREG | 0666);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_EXEC);
    EXPECT_EQ(add_seals(fd, F_SEAL_GROW), 0); /* sealing is allowed */
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_EXEC | F_SEAL_GROW);
    close(fd);
    fd = memfd_create("exec", MFD_EXEC);
    EXPECT_EQ(mode_of(fd), S_IFREG | 0777);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_SEAL);
    close(fd);
    fd = memfd_create("plain", 0);
    EXPECT_EQ(mode_of(fd), S_IFREG | 0777);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_SEAL);
    close(fd);
    ok();

    begin("exec-seal-on-an-executable-memfd-seals-writes");
    fd = memfd_create("exec-seal", MFD_EXEC | MFD_ALLOW_SEALING);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), 0);
    EXPECT_EQ(ftruncate(fd, PG), 0);
    char *w = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(w != MAP_FAILED);
    EXPECT_ERR(add_seals(fd, F_SEAL_EXEC), EBUSY); /* it brings F_SEAL_WRITE along */
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), 0);
    EXPECT_EQ(munmap(w, PG), 0);
    EXPECT_EQ(add_seals(fd, F_SEAL_EXEC), 0);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS),
              F_SEAL_EXEC | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE);
    EXPECT_ERR(pwrite(fd, "x", 1, 0), EPERM);
    close(fd);
    /* A non-executable one takes F_SEAL_EXEC alone. */
    fd = memfd_create("noexec-seal", MFD_NOEXEC_SEAL);
    EXPECT_EQ(add_seals(fd, F_SEAL_EXEC), 0);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_EXEC);
    EXPECT_EQ(pwrite(fd, "x", 1, 0), 1);
    close(fd);
    ok();
}

static int restricted_noexec_write(void) {
    return write_file("/proc/sys/vm/memfd_noexec", "0") == -1 ? 0 : 1;
}

static void noexec_sysctl(void) {
    const char *knob = "/proc/sys/vm/memfd_noexec";
    begin("memfd-noexec-1-seals-plain-memfds");
    EXPECT_EQ(read_number(knob), 0);
    EXPECT_EQ(write_file(knob, "1"), 1);
    EXPECT_EQ(read_number(knob), 1);
    int fd = memfd_create("plain", 0);
    EXPECT(fd >= 0);
    EXPECT_EQ(mode_of(fd), S_IFREG | 0666);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_EXEC);
    close(fd);
    fd = memfd_create("exec", MFD_EXEC);
    EXPECT(fd >= 0);
    EXPECT_EQ(mode_of(fd), S_IFREG | 0777);
    close(fd);
    ok();

    begin("memfd-noexec-2-refuses-mfd-exec");
    EXPECT_EQ(write_file(knob, "2"), 1);
    EXPECT_ERR(memfd_create("exec", MFD_EXEC), EACCES);
    fd = memfd_create("plain", MFD_CLOEXEC);
    EXPECT(fd >= 0);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_EXEC);
    close(fd);
    EXPECT_ERR(write_file(knob, "3"), EINVAL);
    EXPECT_EQ(read_number(knob), 2);
    ok();

    begin("memfd-noexec-restricted-write-refused");
    EXPECT_EQ(write_file(knob, "0"), 1);
    EXPECT_EQ(in_restricted_child(restricted_noexec_write), 0);
    EXPECT_EQ(read_number(knob), 0);
    ok();
}

/* The first line of /proc/self/maps naming `what`, into `out`; 0 if none. */
static int maps_line(const char *what, char *out, size_t len) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    int found = 0;
    while (fgets(out, len, f)) {
        if (strstr(out, what)) {
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static void hugetlb_memfd(long pool) {
    long free0 = hp_free(), rsvd0 = hp_rsvd();
    begin("hugetlb-memfd-sized-in-huge-pages");
    EXPECT_EQ(free0, pool);
    EXPECT_EQ(rsvd0, 0);
    EXPECT_ERR(memfd_create("h", MFD_HUGETLB | MFD_HUGE_64KB), ENODEV);
    int fd = memfd_create("huge", MFD_HUGETLB);
    EXPECT(fd >= 0);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_SEAL);
    EXPECT_ERR(ftruncate(fd, PG), EINVAL);
    EXPECT_EQ(ftruncate(fd, 2 * HPAGE), 0);
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 2 * HPAGE);
    EXPECT_EQ(hp_rsvd(), 0); /* ftruncate reserves nothing */
    EXPECT_ERR(write(fd, "x", 1), EINVAL);
    EXPECT_ERR(mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PG), EINVAL);
    ok();

    begin("hugetlb-memfd-reserves-at-mmap-and-faults-take-pages");
    char *p = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ((long)p % HPAGE, 0);
    EXPECT_EQ(hp_rsvd(), 2);
    EXPECT_EQ(hp_free(), pool);
    p[0] = 'a';
    EXPECT_EQ(hp_rsvd(), 1);
    EXPECT_EQ(hp_free(), pool - 1);
    char line[512];
    EXPECT(maps_line("/memfd:huge (deleted)", line, sizeof line));
    ok();

    begin("hugetlb-memfd-shared-across-fork");
    pid_t child = fork();
    if (child == 0) {
        p[HPAGE + 5] = 'b';
        _exit(p[0] == 'a' ? 0 : 3);
    }
    int status = -1;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(p[HPAGE + 5], 'b');
    EXPECT_EQ(hp_rsvd(), 0);
    EXPECT_EQ(hp_free(), pool - 2);
    char c = 0;
    EXPECT_EQ(pread(fd, &c, 1, HPAGE + 5), 1);
    EXPECT_EQ(c, 'b');
    ok();

    begin("hugetlb-memfd-pages-stay-with-the-file");
    EXPECT_EQ(munmap(p, 2 * HPAGE), 0);
    EXPECT_EQ(hp_free(), pool - 2);
    p = mmap(NULL, 2 * HPAGE, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ(hp_rsvd(), 0); /* both pages exist: nothing to reserve */
    EXPECT_EQ(p[0], 'a');
    EXPECT_EQ(p[HPAGE + 5], 'b');
    EXPECT_EQ(munmap(p, 2 * HPAGE), 0);
    EXPECT_EQ(ftruncate(fd, HPAGE), 0); /* the second page goes back */
    EXPECT_EQ(hp_free(), pool - 1);
    close(fd);
    EXPECT_EQ(hp_free(), pool);
    EXPECT_EQ(hp_rsvd(), 0);
    ok();

    begin("hugetlb-memfd-mmap-past-the-pool-enomem");
    fd = memfd_create("big", MFD_HUGETLB | MFD_HUGE_2MB | MFD_ALLOW_SEALING);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, (pool + 1) * HPAGE), 0);
    EXPECT_ERR(mmap(NULL, (pool + 1) * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), ENOMEM);
    EXPECT_EQ(hp_rsvd(), 0);
    p = mmap(NULL, pool * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ(hp_rsvd(), pool);
    EXPECT_ERR(add_seals(fd, F_SEAL_WRITE), EBUSY);
    EXPECT_EQ(munmap(p, pool * HPAGE), 0);
    EXPECT_EQ(hp_rsvd(), pool); /* a shared mapping's reservations stay with the file */
    EXPECT_EQ(add_seals(fd, F_SEAL_SHRINK), 0);
    EXPECT_ERR(ftruncate(fd, 0), EPERM);
    close(fd);
    EXPECT_EQ(hp_rsvd(), 0);
    EXPECT_EQ(hp_free(), pool);
    ok();
}

static int restricted_mount(void) {
    errno = 0;
    int m = mount("none", "/tmp/hp", "hugetlbfs", 0, "pagesize=2M");
    int m_err = errno;
    errno = 0;
    int u = umount2("/tmp/hp", 0);
    int u_err = errno;
    printf("memfd: restricted mount %d errno %d, umount %d errno %d\n", m, m_err, u, u_err);
    return m == -1 && m_err == EPERM && u == -1 && u_err == EPERM ? 0 : 1;
}

static void hugetlbfs(long pool) {
    struct statfs sfs;
    begin("hugetlbfs-mount-and-refusals");
    mkdir("/tmp/hp", 0755);
    EXPECT_ERR(mount("none", "/tmp/hp", "nosuchfs", 0, NULL), ENODEV);
    EXPECT_ERR(mount("none", "/tmp/hp", "hugetlbfs", 0, "pagesize=3M"), EINVAL);
    EXPECT_ERR(mount("none", "/tmp/nowhere", "hugetlbfs", 0, NULL), ENOENT);
    EXPECT_EQ(mount("none", "/tmp/hp", "hugetlbfs", 0, "pagesize=2M,size=4M"), 0);
    EXPECT_EQ(statfs("/tmp/hp", &sfs), 0);
    EXPECT_EQ(sfs.f_type, HUGETLBFS_MAGIC);
    EXPECT_EQ(in_restricted_child(restricted_mount), 0);
    ok();

    begin("hugetlbfs-file-shared-by-path");
    int fd = open("/tmp/hp/f", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_ERR(ftruncate(fd, PG), EINVAL);
    EXPECT_EQ(ftruncate(fd, HPAGE), 0);
    char *p = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ(hp_rsvd(), 1);
    memcpy(p + 100, "hello", 5);
    EXPECT_EQ(hp_free(), pool - 1);
    EXPECT_EQ(hp_rsvd(), 0);
    EXPECT_EQ(munmap(p, HPAGE), 0);
    close(fd);
    EXPECT_EQ(hp_free(), pool - 1); /* the file keeps its page */
    pid_t child = fork();
    if (child == 0) {
        int cfd = open("/tmp/hp/f", O_RDWR);
        char *cp = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
        if (cp == MAP_FAILED)
            _exit(4);
        int same = !memcmp(cp + 100, "hello", 5);
        cp[200] = 'k';
        _exit(same ? 0 : 3);
    }
    int status = -1;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fd = open("/tmp/hp/f", O_RDONLY);
    EXPECT(fd >= 0);
    char buf[8] = {0};
    EXPECT_EQ(pread(fd, buf, 1, 200), 1);
    EXPECT_EQ(buf[0], 'k');
    close(fd);
    ok();

    begin("hugetlbfs-size-limit-and-unlink-frees");
    fd = open("/tmp/hp/f", O_RDWR);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    /* size=4M: two pages for the mount, one of them held already. */
    EXPECT_ERR(mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), ENOMEM);
    p = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ(hp_rsvd(), 1);
    EXPECT_EQ(munmap(p, 2 * HPAGE), 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hp/f"), 0);
    EXPECT_EQ(hp_free(), pool);
    EXPECT_EQ(hp_rsvd(), 0);
    ok();

    begin("hugetlbfs-umount");
    EXPECT_EQ(umount2("/tmp/hp", 0), 0);
    EXPECT_EQ(statfs("/tmp/hp", &sfs), 0);
    EXPECT_EQ(sfs.f_type, TMPFS_MAGIC);
    EXPECT_ERR(umount2("/tmp/hp", 0), EINVAL);
    EXPECT_EQ(rmdir("/tmp/hp"), 0);
    ok();

    begin("dev-hugepages");
    if (statfs("/dev/hugepages", &sfs) != 0) {
        printf("memfd: check dev-hugepages: ok (absent)\n");
    } else {
        EXPECT_EQ(sfs.f_type, HUGETLBFS_MAGIC);
        printf("memfd: check dev-hugepages: ok (mounted)\n");
    }
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    write_seal_counting();
    exec_flags();
    noexec_sysctl();
    const long pool = 4;
    char want[8];
    snprintf(want, sizeof want, "%ld", pool);
    if (write_file("/proc/sys/vm/nr_hugepages", want) < 0 || meminfo("HugePages_Total") != pool) {
        printf("memfd: cannot fill the 2 MiB pool with %ld pages\n", pool);
        return 1;
    }
    hugetlb_memfd(pool);
    hugetlbfs(pool);
    write_file("/proc/sys/vm/nr_hugepages", "0");
    printf("memfd: all checks passed\n");
    return 0;
}
