/* hugepriv: private (MAP_PRIVATE) mappings of hugetlb files, copy-on-write from the
 * file's huge pages, with HugePages_Free/Rsvd printed and checked after every step:
 * the whole range reserved at mmap, a read of a file page free, a copy or a hole's page
 * using up a reservation, a fork child's unreserved copy (SIGBUS when the pool has no
 * unreserved page), MAP_NORESERVE overrun SIGBUS; hugetlbfs mount options min_size=,
 * nr_inodes=, uid=, gid=, mode=; chmod/fchmod on tmpfs, memfd and hugetlbfs files
 * (owner only) and F_SEAL_EXEC against chmod. Prints `hugepriv: check NAME: ok` per
 * check and exits 1 at the first failure. Runs unchanged on Linux 6.12 as root (a
 * restricted caller is Peios's restrict-self call there, setuid(nobody) on Linux),
 * where the same values hold. */
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

#define PROG "hugepriv"
#include "check.h"
#include "seals.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define HPAGE (2L << 20)

#include "sysfiles.h"

/* Prints the counters after `step` and checks them against the expected ones. */
static void counters(const char *step, long want_free, long want_rsvd) {
    long free = meminfo("HugePages_Free"), rsvd = meminfo("HugePages_Rsvd");
    printf("hugepriv: %s: %s: free %ld rsvd %ld\n", current, step, free, rsvd);
    fflush(stdout);
    if (free != want_free)
        fail(step, free);
    if (rsvd != want_rsvd)
        fail(step, rsvd);
}

static void restrict_self(void) {
    if (syscall(1024) != 0 && setuid(65534) != 0) {
        printf("hugepriv: cannot restrict\n");
        exit(2);
    }
}

/* The wait status of a child that ran `body(arg)`: its exit code, or 100 + signal. */
static int child_status(int (*body)(void *), void *arg, int restricted) {
    pid_t pid = fork();
    if (pid == 0) {
        if (restricted)
            restrict_self();
        _exit(body(arg));
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

static int child_writes(void *arg) {
    char *p = arg;
    if (p[0] != 'm')
        return 3;
    p[0] = 'k'; /* a copy with no reservation */
    return p[0] == 'k' ? 0 : 4;
}

static void private_memfd(long pool) {
    begin("private-memfd-reserves-its-range-and-copies-on-write");
    int fd = memfd_create("hp", MFD_HUGETLB);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 2 * HPAGE), 0);
    counters("sized", pool, 0);
    char *s = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    counters("shared-mapped", pool, 2);
    s[0] = 'f';
    counters("shared-wrote-page-0", pool - 1, 1);
    EXPECT_EQ(munmap(s, 2 * HPAGE), 0);
    counters("shared-unmapped", pool - 1, 1);
    char *p = mmap(NULL, 2 * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    EXPECT_EQ((long)p % HPAGE, 0);
    counters("private-mapped", pool - 1, 3);
    EXPECT_EQ(p[0], 'f');
    counters("private-read-file-page", pool - 1, 3);
    p[0] = 'm';
    counters("private-wrote-file-page", pool - 2, 2);
    char c = 0;
    EXPECT_EQ(pread(fd, &c, 1, 0), 1);
    EXPECT_EQ(c, 'f');
    EXPECT_EQ(p[HPAGE + 9], 0);
    counters("private-read-hole", pool - 3, 1);
    p[HPAGE + 9] = 'h';
    counters("private-wrote-own-page", pool - 3, 1);
    ok();

    begin("private-fork-child-copy-without-reservation-sigbus");
    /* One free page, reserved by the file: the child's copy finds none. */
    EXPECT_EQ(child_status(child_writes, p, 0), 100 + SIGBUS);
    counters("child-sigbus", pool - 3, 1);
    EXPECT_EQ(p[0], 'm');
    EXPECT_EQ(munmap(p, 2 * HPAGE), 0);
    counters("private-unmapped", pool - 1, 1);
    ok();

    begin("private-fork-child-copies-from-free-pages");
    p = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    counters("mapped", pool - 1, 2);
    p[0] = 'm';
    counters("copied", pool - 2, 1);
    EXPECT_EQ(child_status(child_writes, p, 0), 0);
    counters("child-copied-and-exited", pool - 2, 1);
    EXPECT_EQ(p[0], 'm');
    EXPECT_EQ(munmap(p, HPAGE), 0);
    counters("unmapped", pool - 1, 1);
    close(fd);
    counters("closed", pool, 0);
    ok();

    begin("private-mmap-past-the-pool-enomem");
    fd = memfd_create("big", MFD_HUGETLB);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, (pool + 1) * HPAGE), 0);
    EXPECT_ERR(mmap(NULL, (pool + 1) * HPAGE, PROT_READ, MAP_PRIVATE, fd, 0), ENOMEM);
    counters("refused", pool, 0);
    p = mmap(NULL, pool * HPAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    counters("whole-pool-reserved", pool, pool);
    EXPECT_EQ(p[HPAGE], 0);
    counters("read-a-hole", pool - 1, pool - 1);
    EXPECT_EQ(munmap(p + HPAGE, HPAGE), 0);
    counters("unmapped-the-faulted-page", pool, pool - 1);
    EXPECT_EQ(munmap(p, HPAGE), 0);
    EXPECT_EQ(munmap(p + 2 * HPAGE, (pool - 2) * HPAGE), 0);
    counters("unmapped-all", pool, 0);
    close(fd);
    ok();
}

static int noreserve_overrun(void *arg) {
    long pool = (long)arg;
    int fd = open("/tmp/hpp/nr", O_RDWR);
    if (fd < 0)
        return 5;
    char *p = mmap(NULL, (pool + 1) * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE,
                   fd, 0);
    if (p == MAP_FAILED)
        return 6;
    for (long i = 0; i < pool; i++)
        p[i * HPAGE] = 'x';
    counters("child-took-the-whole-pool", 0, 0);
    p[pool * HPAGE] = 'x';
    return 7;
}

static void private_hugetlbfs(long pool) {
    begin("private-hugetlbfs-noreserve-overrun-sigbus");
    mkdir("/tmp/hpp", 0755);
    EXPECT_EQ(mount("none", "/tmp/hpp", "hugetlbfs", 0, "pagesize=2M"), 0);
    int fd = open("/tmp/hpp/nr", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_ERR(mmap(NULL, (pool + 1) * HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), ENOMEM);
    struct stat st;
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 0);
    counters("reserved-mmap-refused", pool, 0);
    EXPECT_EQ(child_status(noreserve_overrun, (void *)pool, 0), 100 + SIGBUS);
    counters("child-sigbus", pool, 0);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, (pool + 1) * HPAGE); /* a writable mapping grew it */
    ok();

    begin("private-hugetlbfs-sees-shared-writes-until-it-writes");
    char *s = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(s != MAP_FAILED);
    char *p = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    counters("both-mapped", pool, 2);
    s[0] = 'a';
    EXPECT_EQ(p[0], 'a');
    counters("private-reads-the-shared-page", pool - 1, 1);
    s[0] = 'b';
    EXPECT_EQ(p[0], 'b');
    p[1] = 'p';
    counters("private-copied", pool - 2, 0);
    s[0] = 'c';
    EXPECT_EQ(p[0], 'b');
    EXPECT_EQ(p[1], 'p');
    EXPECT_EQ(s[1], 0);
    EXPECT_EQ(munmap(p, HPAGE), 0);
    EXPECT_EQ(munmap(s, HPAGE), 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hpp/nr"), 0);
    counters("unlinked", pool, 0);
    EXPECT_EQ(umount2("/tmp/hpp", 0), 0);
    ok();
}

static long mode_at(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_mode : -1;
}

static long fmode(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (long)st.st_mode : -1;
}

static int make_file(const char *path) {
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd >= 0)
        close(fd);
    return fd < 0 ? -1 : 0;
}

static void mount_options(long pool) {
    struct stat st;
    begin("hugetlbfs-option-refusals");
    mkdir("/tmp/hpo", 0755);
    const char *bad[] = {"nr_inodes=x", "uid=abc", "gid=-1", "uid=4294967295", "min_size=x",
                         "size=2M,min_size=4M", "min_size=", "nosuch=1"};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        int r = mount("none", "/tmp/hpo", "hugetlbfs", 0, bad[i]);
        printf("hugepriv: mount %s: %d errno %d\n", bad[i], r, errno);
        if (r != -1 || errno != EINVAL)
            fail(bad[i], r);
    }
    EXPECT_ERR(mount("none", "/tmp/hpo", "hugetlbfs", 0, "min_size=10M"), ENOMEM);
    counters("nothing-reserved", pool, 0);
    ok();

    begin("hugetlbfs-min-size-reserved-while-mounted");
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, "min_size=4M"), 0);
    counters("mounted", pool, 2);
    int fd = open("/tmp/hpo/f", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, HPAGE), 0);
    char *p = mmap(NULL, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    counters("mapped-from-the-mounts-reserve", pool, 2);
    p[0] = 1;
    counters("faulted", pool - 1, 1);
    EXPECT_EQ(munmap(p, HPAGE), 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hpo/f"), 0);
    counters("unlinked-back-to-the-mount", pool, 2);
    fd = open("/tmp/hpo/g", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    p = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    counters("mapped-past-the-minimum", pool, 3);
    EXPECT_EQ(munmap(p, 3 * HPAGE), 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hpo/g"), 0);
    counters("unlinked-refills-the-minimum", pool, 2);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    counters("unmounted", pool, 0);
    ok();

    begin("hugetlbfs-size-limit-counts-private-reservations");
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, "size=4M"), 0);
    fd = open("/tmp/hpo/s", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    EXPECT_ERR(mmap(NULL, 3 * HPAGE, PROT_READ, MAP_PRIVATE, fd, 0), ENOMEM);
    p = mmap(NULL, 2 * HPAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    EXPECT(p != MAP_FAILED);
    counters("private-two-pages", pool, 2);
    EXPECT_ERR(mmap(NULL, HPAGE, PROT_READ, MAP_SHARED, fd, 2 * HPAGE), ENOMEM);
    EXPECT_EQ(munmap(p, 2 * HPAGE), 0);
    counters("unmapped", pool, 0);
    close(fd);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    ok();

    begin("hugetlbfs-nr-inodes");
    EXPECT_ERR(mount("none", "/tmp/hpo", "hugetlbfs", 0, "nr_inodes=0"), ENOMEM);
    /* The root is one of them. */
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, "nr_inodes=3"), 0);
    EXPECT_EQ(make_file("/tmp/hpo/a"), 0);
    EXPECT_EQ(mkdir("/tmp/hpo/d", 0755), 0);
    EXPECT_ERR(open("/tmp/hpo/b", O_CREAT | O_RDWR, 0600), ENOSPC);
    EXPECT_ERR(mkdir("/tmp/hpo/e", 0755), ENOSPC);
    EXPECT_ERR(open("/tmp/hpo/a", O_CREAT | O_EXCL | O_RDWR, 0600), EEXIST);
    int held = open("/tmp/hpo/a", O_RDWR);
    EXPECT(held >= 0);
    EXPECT_EQ(unlink("/tmp/hpo/a"), 0);
    EXPECT_ERR(open("/tmp/hpo/b", O_CREAT | O_RDWR, 0600), ENOSPC); /* still open */
    close(held);
    EXPECT_EQ(make_file("/tmp/hpo/b"), 0);
    EXPECT_EQ(unlink("/tmp/hpo/b"), 0);
    EXPECT_EQ(rmdir("/tmp/hpo/d"), 0);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    ok();

    begin("hugetlbfs-uid-gid-mode-own-the-root");
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, "uid=1000,gid=1001,mode=0700"), 0);
    EXPECT_EQ(stat("/tmp/hpo", &st), 0);
    printf("hugepriv: root uid %u gid %u mode %o\n", st.st_uid, st.st_gid, st.st_mode);
    EXPECT_EQ(st.st_uid, 1000);
    EXPECT_EQ(st.st_gid, 1001);
    EXPECT_EQ(st.st_mode, 040700);
    ok();
}

static int restricted_creates_in_hpo(void *arg) {
    (void)arg;
    errno = 0;
    int fd = open("/tmp/hpo/r", O_CREAT | O_RDWR, 0600);
    int e = errno;
    printf("hugepriv: restricted create in a 0700 root of uid 1000: %d errno %d\n", fd, e);
    return fd == -1 && e == EACCES ? 0 : 1;
}

static int restricted_chmods(void *arg) {
    int fd = (int)(long)arg;
    errno = 0;
    int a = chmod("/tmp/hpc", 0666);
    int ae = errno;
    errno = 0;
    int b = fchmod(fd, 0666);
    int be = errno;
    errno = 0;
    int c = syscall(SYS_fchmodat, AT_FDCWD, "/tmp/hpc", 0666);
    int ce = errno;
    printf("hugepriv: restricted chmod %d errno %d, fchmod %d errno %d, fchmodat %d errno %d\n",
           a, ae, b, be, c, ce);
    return a == -1 && ae == EPERM && b == -1 && be == EPERM && c == -1 && ce == EPERM ? 0 : 1;
}

static int restricted_opens(void *arg) {
    (void)arg;
    int r = open("/tmp/hpc", O_RDONLY);
    int re = errno;
    errno = 0;
    int w = open("/tmp/hpc", O_WRONLY);
    int we = errno;
    printf("hugepriv: restricted open read %s (errno %d), write %d errno %d; / %lo /tmp %lo\n",
           r >= 0 ? "ok" : "refused", r >= 0 ? 0 : re, w, we, mode_at("/"), mode_at("/tmp"));
    return (long)arg == 0644 ? (r >= 0 && w == -1 && we == EACCES ? 0 : 1)
                             : (r == -1 && re == EACCES ? 0 : 1);
}

static int restricted_fchmod_memfd(void *arg) {
    int fd = (int)(long)arg;
    errno = 0;
    int r = fchmod(fd, 0777);
    return r == -1 && errno == EPERM ? 0 : 1;
}

static void chmods(void) {
    begin("chmod-tmpfs-rewrites-the-descriptor");
    unlink("/tmp/hpc");
    int fd = open("/tmp/hpc", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(mode_at("/tmp/hpc"), 0100600);
    EXPECT_EQ(child_status(restricted_opens, (void *)0600L, 1), 0);
    EXPECT_EQ(chmod("/tmp/hpc", 0644), 0);
    EXPECT_EQ(mode_at("/tmp/hpc"), 0100644);
    EXPECT_EQ(fmode(fd), 0100644);
    EXPECT_EQ(child_status(restricted_opens, (void *)0644L, 1), 0);
    EXPECT_EQ(fchmod(fd, 0640), 0);
    EXPECT_EQ(mode_at("/tmp/hpc"), 0100640);
    EXPECT_EQ(syscall(SYS_fchmodat, AT_FDCWD, "/tmp/hpc", 04755), 0);
    EXPECT_EQ(mode_at("/tmp/hpc"), 0104755);
    EXPECT_EQ(child_status(restricted_chmods, (void *)(long)fd, 1), 0);
    EXPECT_EQ(mode_at("/tmp/hpc"), 0104755);
    EXPECT_ERR(chmod("/tmp/nosuch", 0600), ENOENT);
    EXPECT_ERR(syscall(452, AT_FDCWD, "/tmp/hpc", 0600, 0x4), EINVAL);
    EXPECT_EQ(syscall(452, fd, "", 0620, AT_EMPTY_PATH), 0);
    EXPECT_EQ(fmode(fd), 0100620);
    EXPECT_ERR(syscall(452, fd, "", 0620, 0), ENOENT);
    EXPECT_EQ(mkdir("/tmp/hpcd", 0700), 0);
    EXPECT_EQ(chmod("/tmp/hpcd", 0750), 0);
    EXPECT_EQ(mode_at("/tmp/hpcd"), 040750);
    EXPECT_EQ(rmdir("/tmp/hpcd"), 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hpc"), 0);
    ok();

    begin("fchmod-memfd-and-exec-seal");
    fd = memfd_create("m", MFD_ALLOW_SEALING);
    EXPECT(fd >= 0);
    EXPECT_EQ(fmode(fd), 0100777);
    EXPECT_EQ(fchmod(fd, 0700), 0);
    EXPECT_EQ(fmode(fd), 0100700);
    EXPECT_EQ(child_status(restricted_fchmod_memfd, (void *)(long)fd, 1), 0);
    EXPECT_EQ(fmode(fd), 0100700);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_EXEC), 0);
    EXPECT_ERR(fchmod(fd, 0600), EPERM);  /* clears exec bits */
    EXPECT_ERR(fchmod(fd, 0755), EPERM);  /* sets some */
    EXPECT_EQ(fchmod(fd, 0500), 0);       /* same exec bits */
    EXPECT_EQ(fmode(fd), 0100500);
    close(fd);
    fd = memfd_create("n", MFD_NOEXEC_SEAL);
    EXPECT(fd >= 0);
    EXPECT_EQ(fmode(fd), 0100666);
    EXPECT_ERR(fchmod(fd, 0777), EPERM);
    EXPECT_EQ(fchmod(fd, 0600), 0);
    EXPECT_EQ(fmode(fd), 0100600);
    close(fd);
    ok();

    begin("chmod-hugetlbfs-and-hugetlb-memfd");
    mkdir("/tmp/hpo", 0755);
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, "mode=0777"), 0);
    fd = open("/tmp/hpo/h", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(chmod("/tmp/hpo/h", 0644), 0);
    EXPECT_EQ(fmode(fd), 0100644);
    EXPECT_EQ(fchmod(fd, 0640), 0);
    EXPECT_EQ(mode_at("/tmp/hpo/h"), 0100640);
    EXPECT_EQ(chmod("/tmp/hpo", 0755), 0);
    EXPECT_EQ(mode_at("/tmp/hpo"), 040755);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hpo/h"), 0);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    fd = memfd_create("hm", MFD_HUGETLB | MFD_ALLOW_SEALING);
    EXPECT(fd >= 0);
    EXPECT_EQ(fchmod(fd, 0755), 0);
    EXPECT_EQ(fmode(fd), 0100755);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_EXEC), 0);
    /* Linux's hugetlbfs does not check F_SEAL_EXEC on chmod (shmem does). */
    errno = 0;
    int r = fchmod(fd, 0644);
    printf("hugepriv: sealed-exec hugetlb memfd fchmod 0644: %d errno %d\n", r, errno);
    EXPECT_EQ(r, 0);
    EXPECT_EQ(fmode(fd), 0100644);
    close(fd);
    ok();
}

static int restricted_chowns(void *arg) {
    int fd = (int)(long)arg;
    errno = 0;
    int a = chown("/tmp/hpw", 65534, -1);
    int ae = errno;
    errno = 0;
    int b = fchown(fd, -1, 65534);
    int be = errno;
    printf("hugepriv: restricted chown %d errno %d, fchown %d errno %d\n", a, ae, b, be);
    return a == -1 && ae == EPERM && b == -1 && be == EPERM ? 0 : 1;
}

static long owner_of(const char *path, long *gid) {
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    *gid = st.st_gid;
    return st.st_uid;
}

static void chowns(void) {
    long gid = -1;
    struct stat st;
    begin("chown-tmpfs-memfd-hugetlbfs");
    unlink("/tmp/hpw");
    int fd = open("/tmp/hpw", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(fchmod(fd, 06755), 0);
    EXPECT_EQ(chown("/tmp/hpw", 1000, 1001), 0);
    EXPECT_EQ(owner_of("/tmp/hpw", &gid), 1000);
    EXPECT_EQ(gid, 1001);
    printf("hugepriv: chown of a 6755 file leaves %lo\n", mode_at("/tmp/hpw"));
    EXPECT_EQ(mode_at("/tmp/hpw"), 0100755); /* set-ID bits dropped */
    EXPECT_EQ(fchmod(fd, 02745), 0);
    EXPECT_EQ(fchown(fd, -1, 1002), 0);
    EXPECT_EQ(owner_of("/tmp/hpw", &gid), 1000);
    EXPECT_EQ(gid, 1002);
    printf("hugepriv: chgrp of a 2745 file leaves %lo\n", mode_at("/tmp/hpw"));
    EXPECT_EQ(mode_at("/tmp/hpw"), 0102745); /* set-group-ID kept: no group exec */
    EXPECT_EQ(syscall(SYS_fchownat, AT_FDCWD, "/tmp/hpw", 0, 0, 0), 0);
    EXPECT_EQ(owner_of("/tmp/hpw", &gid), 0);
    EXPECT_ERR(syscall(SYS_fchownat, AT_FDCWD, "/tmp/hpw", 0, 0, 0x4), EINVAL);
    EXPECT_ERR(chown("/tmp/nosuch", 0, 0), ENOENT);
    EXPECT_EQ(child_status(restricted_chowns, (void *)(long)fd, 1), 0);
    EXPECT_EQ(owner_of("/tmp/hpw", &gid), 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hpw"), 0);
    fd = memfd_create("o", 0);
    EXPECT(fd >= 0);
    EXPECT_EQ(fchown(fd, 1000, 1000), 0);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_uid, 1000);
    EXPECT_EQ(st.st_gid, 1000);
    EXPECT_EQ(fchmod(fd, 0600), 0); /* the privileged caller still may */
    close(fd);
    mkdir("/tmp/hpo", 0755);
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, NULL), 0);
    fd = open("/tmp/hpo/o", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(fchown(fd, 1000, -1), 0);
    EXPECT_EQ(owner_of("/tmp/hpo/o", &gid), 1000);
    EXPECT_EQ(gid, 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hpo/o"), 0);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    ok();
}

/* Prints what statfs reports of `path` (or fstatfs of `fd` when `path` is NULL). */
static void print_statfs(const char *what, const char *path, int fd) {
    struct statfs sfs;
    int r = path ? statfs(path, &sfs) : fstatfs(fd, &sfs);
    if (r != 0)
        fail("statfs", r);
    printf("hugepriv: statfs %s: type %lx bsize %ld blocks %ld bfree %ld bavail %ld files %ld "
           "ffree %ld frsize %ld\n",
           what, (long)sfs.f_type, (long)sfs.f_bsize, (long)sfs.f_blocks, (long)sfs.f_bfree,
           (long)sfs.f_bavail, (long)sfs.f_files, (long)sfs.f_ffree, (long)sfs.f_frsize);
    fflush(stdout);
}

static void statfs_counts(void) {
    begin("hugetlbfs-statfs-counts");
    mkdir("/tmp/hpo", 0755);
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, "nr_inodes=5"), 0);
    print_statfs("no-size-limit", "/tmp/hpo", -1);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, "min_size=2M"), 0);
    print_statfs("min-size-only", "/tmp/hpo", -1);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    EXPECT_EQ(mount("none", "/tmp/hpo", "hugetlbfs", 0, "size=8M,nr_inodes=5"), 0);
    int fd = open("/tmp/hpo/s", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 3 * HPAGE), 0);
    char *p = mmap(NULL, 3 * HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    p[0] = 1;
    print_statfs("size-8M-three-reserved", "/tmp/hpo", -1);
    print_statfs("fstatfs-of-its-file", NULL, fd);
    EXPECT_EQ(munmap(p, 3 * HPAGE), 0);
    close(fd);
    EXPECT_EQ(unlink("/tmp/hpo/s"), 0);
    print_statfs("size-8M-emptied", "/tmp/hpo", -1);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    fd = memfd_create("st", MFD_HUGETLB);
    EXPECT(fd >= 0);
    print_statfs("hugetlb-memfd", NULL, fd);
    close(fd);
    ok();
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    const long pool = 4;
    char want[8];
    snprintf(want, sizeof want, "%ld", pool);
    if (write_file("/proc/sys/vm/nr_hugepages", want) < 0 || meminfo("HugePages_Total") != pool) {
        printf("hugepriv: cannot fill the 2 MiB pool with %ld pages\n", pool);
        return 1;
    }
    private_memfd(pool);
    private_hugetlbfs(pool);
    mount_options(pool);
    begin("hugetlbfs-uid-gid-mode-restricted-create");
    EXPECT_EQ(child_status(restricted_creates_in_hpo, NULL, 1), 0);
    EXPECT_EQ(umount2("/tmp/hpo", 0), 0);
    ok();
    chmods();
    chowns();
    statfs_counts();
    write_file("/proc/sys/vm/nr_hugepages", "0");
    printf("hugepriv: all checks passed\n");
    return 0;
}
