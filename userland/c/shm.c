/* shm: the writable tmpfs at /tmp and /dev/shm, POSIX shared memory through libc
 * (shm_open/shm_unlink), and memfd sealing. Every check reads values back or compares
 * an errno with Linux's; prints `shm: check NAME: ok` per check and exits 1 on the
 * first failure. Runs unchanged on Linux (the restricted-caller check uses Peios's
 * restrict-self call there, setuid(nobody) on Linux). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROG "shm"
#include "check.h"
#include "seals.h"

static long file_size(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return st.st_size;
}

/* Whether directory `dir` lists exactly the names in `want` (besides . and ..). */
static int lists_exactly(const char *dir, const char *const *want, int n) {
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int seen = 0, dots = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            dots++;
            continue;
        }
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= !strcmp(e->d_name, want[i]);
        if (!found)
            return closedir(d), 0;
        seen++;
    }
    closedir(d);
    return seen == n && dots == 2;
}

static void mounts(void) {
    struct stat st;
    begin("tmp-and-dev-shm-are-sticky-dirs");
    EXPECT_EQ(stat("/tmp", &st), 0);
    EXPECT(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 01777);
    EXPECT_EQ(stat("/dev/shm", &st), 0);
    EXPECT(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 01777);
    ok();
}

static void create_read_write(void) {
    char buf[64];
    struct stat st;
    begin("create-excl-write-read-stat");
    umask(022);
    EXPECT_EQ(mkdir("/tmp/t", 0755), 0);
    EXPECT_ERR(mkdir("/tmp/t", 0755), EEXIST);
    int fd = open("/tmp/t/a", O_CREAT | O_EXCL | O_RDWR, 0666);
    EXPECT(fd >= 0);
    EXPECT_ERR(open("/tmp/t/a", O_CREAT | O_EXCL | O_RDWR, 0666), EEXIST);
    EXPECT_EQ(write(fd, "hello", 5), 5);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 5);
    EXPECT_EQ(st.st_nlink, 1);
    EXPECT_EQ(st.st_mode, S_IFREG | 0644);
    EXPECT_EQ(lseek(fd, 0, SEEK_SET), 0);
    EXPECT_EQ(read(fd, buf, sizeof buf), 5);
    EXPECT(!memcmp(buf, "hello", 5));
    EXPECT_EQ(read(fd, buf, sizeof buf), 0);
    struct stat by_path;
    EXPECT_EQ(stat("/tmp/t/a", &by_path), 0);
    EXPECT_EQ(by_path.st_ino, st.st_ino);
    EXPECT_EQ(by_path.st_dev, st.st_dev);
    close(fd);
    ok();

    begin("pwrite-grows-with-a-hole-seek-end");
    fd = open("/tmp/t/a", O_RDWR);
    EXPECT(fd >= 0);
    EXPECT_EQ(pwrite(fd, "x", 1, 8192), 1);
    EXPECT_EQ(lseek(fd, 0, SEEK_END), 8193);
    EXPECT_EQ(lseek(fd, -3, SEEK_END), 8190);
    memset(buf, 0x55, sizeof buf);
    EXPECT_EQ(pread(fd, buf, 8, 100), 8);
    for (int i = 0; i < 8; i++)
        EXPECT_EQ(buf[i], 0);
    EXPECT_EQ(pread(fd, buf, 10, 8190), 3);
    EXPECT_EQ(buf[2], 'x');
    EXPECT_EQ(pread(fd, buf, 4, 0), 4);
    EXPECT(!memcmp(buf, "hell", 4));
    close(fd);
    ok();

    begin("append-writes-at-the-end");
    fd = open("/tmp/t/a", O_WRONLY | O_APPEND);
    EXPECT(fd >= 0);
    EXPECT_EQ(write(fd, "yz", 2), 2);
    EXPECT_EQ(file_size("/tmp/t/a"), 8195);
    close(fd);
    ok();

    begin("truncate-ftruncate-o-trunc");
    EXPECT_EQ(truncate("/tmp/t/a", 100), 0);
    EXPECT_EQ(file_size("/tmp/t/a"), 100);
    fd = open("/tmp/t/a", O_RDWR);
    EXPECT_EQ(ftruncate(fd, 3), 0);
    EXPECT_EQ(pread(fd, buf, sizeof buf, 0), 3);
    EXPECT(!memcmp(buf, "hel", 3));
    EXPECT_EQ(ftruncate(fd, 4096), 0);
    EXPECT_EQ(pread(fd, buf, 4, 3), 4);
    EXPECT(!memcmp(buf, "\0\0\0\0", 4)); /* bytes cut off come back as zeros */
    close(fd);
    EXPECT_ERR(truncate("/tmp/t", 0), EISDIR);
    EXPECT_ERR(truncate("/tmp/t/none", 0), ENOENT);
    fd = open("/tmp/t/a", O_RDWR | O_TRUNC);
    EXPECT(fd >= 0);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 0);
    close(fd);
    ok();
}

static void mappings(void) {
    begin("mmap-shared-sees-writes-both-ways");
    int fd = open("/tmp/t/m", O_CREAT | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(ftruncate(fd, 8192), 0);
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    memcpy(p + 4096, "mapped", 6);
    char buf[8] = {0};
    EXPECT_EQ(pread(fd, buf, 6, 4096), 6);
    EXPECT(!memcmp(buf, "mapped", 6));
    EXPECT_EQ(pwrite(fd, "written", 7, 10), 7);
    EXPECT(!memcmp(p + 10, "written", 7));
    ok();

    begin("mmap-private-is-a-copy");
    char *q = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(q != MAP_FAILED);
    EXPECT(!memcmp(q + 10, "written", 7));
    memcpy(q + 10, "PRIVATE", 7);
    EXPECT(!memcmp(p + 10, "written", 7));
    EXPECT_EQ(pread(fd, buf, 7, 10), 7);
    EXPECT(!memcmp(buf, "written", 7));
    munmap(q, 8192);
    munmap(p, 8192);
    close(fd);
    ok();
}

static void directories(void) {
    struct stat st;
    begin("getdents-lists-names-and-nlink");
    EXPECT_EQ(mkdir("/tmp/t/d", 0700), 0);
    const char *names[] = {"a", "m", "d"};
    EXPECT(lists_exactly("/tmp/t", names, 3));
    EXPECT_EQ(stat("/tmp/t", &st), 0);
    EXPECT_EQ(st.st_nlink, 3);
    EXPECT_EQ(stat("/tmp/t/d", &st), 0);
    EXPECT_EQ(st.st_mode, S_IFDIR | 0700);
    EXPECT_EQ(st.st_nlink, 2);
    EXPECT(lists_exactly("/tmp/t/d", names, 0));
    ok();

    begin("errnos-as-linux");
    EXPECT_ERR(rmdir("/tmp/t"), ENOTEMPTY);
    EXPECT_ERR(rmdir("/tmp/t/a"), ENOTDIR);
    EXPECT_ERR(unlink("/tmp/t/d"), EISDIR);
    EXPECT_ERR(unlink("/tmp/t/none"), ENOENT);
    EXPECT_ERR(open("/tmp/t/none", O_RDONLY), ENOENT);
    EXPECT_ERR(open("/tmp/t/a/x", O_RDONLY), ENOTDIR);
    EXPECT_ERR(open("/tmp/t/a/x", O_CREAT | O_RDWR, 0600), ENOTDIR);
    EXPECT_ERR(open("/tmp/t/d", O_WRONLY), EISDIR);
    EXPECT_ERR(open("/tmp/t/a", O_RDONLY | O_DIRECTORY), ENOTDIR);
    EXPECT_ERR(mkdir("/tmp/t/none/x", 0700), ENOENT);
    EXPECT_ERR(mkdir("/tmp/t/a", 0700), EEXIST);
    EXPECT_ERR(rmdir("/tmp/t/d/."), EINVAL);
    ok();

    begin("rename-within-and-across-mounts");
    char buf[8] = {0};
    int fd = open("/tmp/t/a", O_RDWR);
    EXPECT_EQ(write(fd, "moved", 5), 5);
    close(fd);
    EXPECT_EQ(rename("/tmp/t/a", "/tmp/t/d/b"), 0);
    EXPECT_ERR(stat("/tmp/t/a", &st), ENOENT);
    fd = open("/tmp/t/d/b", O_RDONLY);
    EXPECT(fd >= 0);
    EXPECT_EQ(read(fd, buf, 8), 5);
    EXPECT(!memcmp(buf, "moved", 5));
    close(fd);
    EXPECT_EQ(rename("/tmp/t/d/b", "/tmp/t/m"), 0); /* replaces m */
    EXPECT_EQ(file_size("/tmp/t/m"), 5);
    EXPECT_ERR(rename("/tmp/t/m", "/dev/shm/m"), EXDEV);
    EXPECT_ERR(rename("/tmp/t", "/tmp/t/d/t"), EINVAL);
    EXPECT_ERR(rename("/tmp/t/none", "/tmp/t/x"), ENOENT);
    EXPECT_ERR(rename("/tmp/t/d", "/tmp/t/m"), ENOTDIR);
    EXPECT_ERR(rename("/tmp/t/m", "/tmp/t/d"), EISDIR);
    EXPECT_EQ(rename("/tmp/t/d", "/tmp/t/e"), 0);
    EXPECT_EQ(stat("/tmp/t/e", &st), 0);
    EXPECT(S_ISDIR(st.st_mode));
    ok();

    begin("unlinked-file-lives-while-open");
    fd = open("/tmp/t/m", O_RDWR);
    EXPECT(fd >= 0);
    EXPECT_EQ(unlink("/tmp/t/m"), 0);
    EXPECT_ERR(open("/tmp/t/m", O_RDONLY), ENOENT);
    EXPECT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_nlink, 0);
    EXPECT_EQ(pread(fd, buf, 8, 0), 5);
    EXPECT(!memcmp(buf, "moved", 5));
    close(fd);
    EXPECT_EQ(rmdir("/tmp/t/e"), 0);
    EXPECT_EQ(rmdir("/tmp/t"), 0);
    EXPECT_ERR(stat("/tmp/t", &st), ENOENT);
    ok();
}

static void restrict_self(void) {
    if (syscall(1024) != 0 && setuid(65534) != 0) {
        printf("shm: cannot drop privilege\n");
        _exit(2);
    }
}

static void permissions(void) {
    begin("mode-bits-refuse-a-restricted-caller");
    int fd = open("/tmp/private", O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT(fd >= 0);
    close(fd);
    fd = open("/tmp/public", O_CREAT | O_EXCL | O_RDWR, 0644);
    EXPECT(fd >= 0);
    EXPECT_EQ(write(fd, "pub", 3), 3);
    close(fd);
    pid_t child = fork();
    if (child == 0) {
        restrict_self();
        errno = 0;
        if (open("/tmp/private", O_RDONLY) != -1 || errno != EACCES)
            _exit(10);
        if (open("/tmp/public", O_WRONLY) != -1 || errno != EACCES)
            _exit(11);
        int r = open("/tmp/public", O_RDONLY);
        char buf[4];
        if (r < 0 || read(r, buf, 4) != 3 || memcmp(buf, "pub", 3))
            _exit(12);
        _exit(0);
    }
    int status = -1;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(unlink("/tmp/private"), 0);
    EXPECT_EQ(unlink("/tmp/public"), 0);
    ok();
}

static void posix_shm(void) {
    begin("shm-open-shared-with-a-forked-child");
    shm_unlink("/peios-shm");
    int fd = shm_open("/peios-shm", O_CREAT | O_EXCL | O_RDWR, 0600);
    EXPECT(fd >= 0);
    EXPECT_EQ(fcntl(fd, F_GETFD), FD_CLOEXEC);
    EXPECT_ERR(shm_open("/peios-shm", O_CREAT | O_EXCL | O_RDWR, 0600), EEXIST);
    EXPECT_EQ(ftruncate(fd, 4096), 0);
    EXPECT_EQ(file_size("/dev/shm/peios-shm"), 4096);
    volatile char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(p != MAP_FAILED);
    p[0] = 1;
    pid_t child = fork();
    if (child == 0) {
        /* Through the inherited mapping, then through a fresh shm_open by name. */
        p[1] = 'c';
        int again = shm_open("/peios-shm", O_RDWR, 0);
        if (again < 0)
            _exit(10);
        char *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, again, 0);
        if (q == MAP_FAILED || q[0] != 1)
            _exit(11);
        q[2] = 'n';
        _exit(0);
    }
    int status = -1;
    EXPECT_EQ(waitpid(child, &status, 0), child);
    EXPECT(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_EQ(p[1], 'c');
    EXPECT_EQ(p[2], 'n');
    char buf[3];
    EXPECT_EQ(pread(fd, buf, 3, 0), 3);
    EXPECT_EQ(buf[2], 'n');
    ok();

    begin("shm-unlink-removes-the-name");
    EXPECT_EQ(shm_unlink("/peios-shm"), 0);
    EXPECT_ERR(shm_open("/peios-shm", O_RDWR, 0), ENOENT);
    EXPECT_ERR(shm_unlink("/peios-shm"), ENOENT);
    EXPECT_EQ(p[2], 'n'); /* the mapping keeps the pages */
    munmap((void *)p, 4096);
    close(fd);
    ok();
}

static void sealing(void) {
    begin("seals-need-allow-sealing");
    int plain = memfd_create("plain", 0);
    EXPECT(plain >= 0);
    EXPECT_EQ(fcntl(plain, F_GET_SEALS), F_SEAL_SEAL);
    EXPECT_ERR(fcntl(plain, F_ADD_SEALS, F_SEAL_WRITE), EPERM);
    close(plain);
    int tmp = open("/tmp/sealed", O_CREAT | O_RDWR, 0600);
    EXPECT_EQ(fcntl(tmp, F_GET_SEALS), F_SEAL_SEAL);
    EXPECT_ERR(fcntl(tmp, F_ADD_SEALS, F_SEAL_GROW), EPERM);
    close(tmp);
    unlink("/tmp/sealed");
    EXPECT_ERR(fcntl(0, F_GET_SEALS), EINVAL);
    ok();

    begin("shrink-and-grow-seals");
    int fd = memfd_create("sealed", MFD_ALLOW_SEALING);
    EXPECT(fd >= 0);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), 0);
    EXPECT_EQ(ftruncate(fd, 8192), 0);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    EXPECT_ERR(ftruncate(fd, 4096), EPERM);
    EXPECT_EQ(ftruncate(fd, 12288), 0);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW), 0);
    EXPECT_ERR(ftruncate(fd, 16384), EPERM);
    EXPECT_ERR(pwrite(fd, "x", 1, 12288), EPERM);
    EXPECT_EQ(pwrite(fd, "x", 1, 12287), 1);
    EXPECT_EQ(ftruncate(fd, 12288), 0);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW);
    EXPECT_ERR(fcntl(fd, F_ADD_SEALS, 0x100), EINVAL);
    ok();

    begin("write-seal-busy-while-mapped-shared-writable");
    EXPECT_EQ(pwrite(fd, "s", 1, 0), 1);
    char *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(w != MAP_FAILED);
    EXPECT_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EBUSY);
    EXPECT_EQ(munmap(w, 4096), 0);
    /* A read-only shared mapping of a descriptor open for writing may become
     * writable (mprotect): it blocks the seal too, as on Linux. */
    char *r = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT(r != MAP_FAILED);
    EXPECT_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), EBUSY);
    EXPECT_EQ(munmap(r, 4096), 0);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
    r = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT(r != MAP_FAILED);
    EXPECT_ERR(write(fd, "x", 1), EPERM);
    EXPECT_ERR(pwrite(fd, "x", 1, 0), EPERM);
    EXPECT_ERR(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EPERM);
    EXPECT_ERR(mprotect(r, 4096, PROT_READ | PROT_WRITE), EACCES);
    char *priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    EXPECT(priv != MAP_FAILED);
    priv[0] = 'p';
    EXPECT_EQ(r[0], 's'); /* the private copy's write stays private */
    EXPECT_EQ(priv[0], 'p');
    ok();

    begin("seal-seal-freezes-the-set");
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL), 0);
    EXPECT_ERR(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), EPERM);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS), F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    close(fd);
    ok();

    begin("future-write-keeps-existing-mappings");
    fd = memfd_create("future", MFD_ALLOW_SEALING);
    EXPECT_EQ(ftruncate(fd, 4096), 0);
    w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT(w != MAP_FAILED);
    EXPECT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
    w[0] = 'w'; /* the existing writable mapping still writes */
    char c = 0;
    EXPECT_EQ(pread(fd, &c, 1, 0), 1);
    EXPECT_EQ(c, 'w');
    EXPECT_ERR(pwrite(fd, "x", 1, 0), EPERM);
    EXPECT_ERR(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), EPERM);
    EXPECT_EQ(ftruncate(fd, 8192), 0); /* size changes stay allowed */
    close(fd);
    ok();
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    mounts();
    create_read_write();
    mappings();
    directories();
    permissions();
    posix_shm();
    sealing();
    printf("shm: all checks passed\n");
    return 0;
}
