/* aslr: user address-space randomisation and the two ways to turn it off, checked
 * against what Linux 6.12 does. Each probe is a fresh exec of this program that
 * reports where its first anonymous mmap landed: two execs differ (the mmap base moves
 * per exec); personality(ADDR_NO_RANDOMIZE), inherited by fork and kept across exec,
 * makes them equal, as does kernel.randomize_va_space = 0. personality(0xffffffff)
 * only reads the value; any other value is taken and the old one returned. The sysctl
 * takes any non-negative int (Linux takes negative ones too).
 * Prints `aslr: check NAME: ok` per check; exits 1 at the first failure. */
#define _GNU_SOURCE
#define PROG "aslr"
#include "check.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/wait.h>
#include <unistd.h>

/* Where a fresh exec of this program places its first anonymous mmap. */
static uintptr_t probe(void) {
    int fds[2];
    EXPECT(pipe(fds) == 0);
    pid_t child = fork();
    EXPECT(child >= 0);
    if (child == 0) {
        dup2(fds[1], 1);
        execl("/proc/self/exe", "aslr", "probe", (char *)0);
        _exit(127);
    }
    close(fds[1]);
    char buf[64] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int status;
    EXPECT(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT(n > 0);
    return (uintptr_t)strtoull(buf, 0, 16);
}

static void set_randomize(const char *value) {
    int fd = open("/proc/sys/kernel/randomize_va_space", O_WRONLY);
    EXPECT(fd >= 0);
    EXPECT_EQ(write(fd, value, strlen(value)), (long)strlen(value));
    close(fd);
}

static long read_randomize(void) {
    char buf[16] = {0};
    int fd = open("/proc/sys/kernel/randomize_va_space", O_RDONLY);
    EXPECT(fd >= 0);
    EXPECT(read(fd, buf, sizeof buf - 1) > 0);
    close(fd);
    return strtol(buf, 0, 10);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "probe") == 0) {
        void *p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("%lx\n", (unsigned long)p);
        return p == MAP_FAILED;
    }
    begin("default-randomize-2");
    EXPECT_EQ(read_randomize(), 2);
    ok();

    begin("default-personality-linux");
    EXPECT_EQ(personality(0xffffffff), PER_LINUX);
    ok();

    begin("two-execs-differ");
    uintptr_t a = probe(), b = probe();
    EXPECT(a != 0 && b != 0 && a != b);
    ok();

    begin("personality-returns-old");
    EXPECT_EQ(personality(PER_LINUX | ADDR_NO_RANDOMIZE), PER_LINUX);
    EXPECT_EQ(personality(0xffffffff), ADDR_NO_RANDOMIZE);
    ok();

    begin("no-randomize-execs-equal");
    a = probe(), b = probe();
    EXPECT(a != 0 && a == b);
    ok();

    begin("personality-back-randomizes");
    EXPECT_EQ(personality(PER_LINUX), ADDR_NO_RANDOMIZE);
    a = probe(), b = probe();
    EXPECT(a != b);
    ok();

    begin("randomize-va-space-0-execs-equal");
    set_randomize("0");
    EXPECT_EQ(read_randomize(), 0);
    a = probe(), b = probe();
    set_randomize("2");
    EXPECT(a != 0 && a == b);
    ok();

    /* Linux takes any int here (proc_dointvec): 3 reads back, and randomises. */
    begin("randomize-va-space-3-taken");
    set_randomize("3");
    EXPECT_EQ(read_randomize(), 3);
    a = probe(), b = probe();
    set_randomize("2");
    EXPECT(a != b);
    ok();

    printf("aslr: all checks passed\n");
    return 0;
}
