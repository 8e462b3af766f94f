/* shmtrunc_bench: the cost of truncating and punching shared memory beside many
 * processes, the pattern of stress-ng's fault stressor (a tmpfs file created, written,
 * cut and dropped thousands of times a second). A hole punch or truncation must take
 * the file's pages out of every mapping of it; with no reverse map the kernel may walk
 * every address space. This forks CHILDREN idle processes (each a copy of a parent
 * with VMAS extra mappings), then times ROUNDS of: memfd_create, pwrite one page,
 * fallocate(PUNCH_HOLE) of it, pwrite again, ftruncate(0), close; once with the file
 * mapped nowhere ("unmapped") and once with a one-page shared mapping of it alive in
 * this process during the round ("mapped"). Prints microseconds per round for each.
 * Usage: shmtrunc_bench [CHILDREN [VMAS [ROUNDS]]] (default 32 200 20000). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define PAGE 4096L

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int one_round(int mapped) {
    static char buf[PAGE];
    int fd = memfd_create("bench", 0);
    if (fd < 0)
        return -1;
    char *m = NULL;
    if (pwrite(fd, buf, PAGE, 0) != PAGE)
        return -1;
    if (mapped) {
        m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            return -1;
        m[0] = 1;
    }
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PAGE) != 0)
        return -1;
    if (pwrite(fd, buf, PAGE, 0) != PAGE)
        return -1;
    if (ftruncate(fd, 0) != 0)
        return -1;
    if (m)
        munmap(m, PAGE);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 32;
    int vmas = argc > 2 ? atoi(argv[2]) : 200;
    int rounds = argc > 3 ? atoi(argv[3]) : 20000;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Extra mappings (alternating protections, so they stay separate VMAs). */
    for (int i = 0; i < vmas; i++) {
        char *p = mmap(NULL, PAGE, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
    }
    pid_t pids[1024];
    if (children > 1024)
        children = 1024;
    /* The children block reading a pipe nobody writes (not pause(), which a kernel
     * without it would turn into a busy loop of ENOSYS). */
    int idle[2];
    if (pipe(idle) != 0) {
        perror("pipe");
        return 1;
    }
    for (int i = 0; i < children; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            char c;
            for (;;)
                if (read(idle[0], &c, 1) == 0)
                    _exit(0);
        }
        if (pids[i] < 0) {
            perror("fork");
            return 1;
        }
    }
    for (int mapped = 0; mapped < 2; mapped++) {
        for (int i = 0; i < rounds / 10; i++) /* warm up */
            if (one_round(mapped) != 0) {
                perror("round");
                return 1;
            }
        double t0 = now_us();
        for (int i = 0; i < rounds; i++)
            if (one_round(mapped) != 0) {
                perror("round");
                return 1;
            }
        double per = (now_us() - t0) / rounds;
        printf("shmtrunc_bench: %s: %d children, %d vmas: %.2f us per round\n",
               mapped ? "mapped" : "unmapped", children, vmas, per);
    }
    for (int i = 0; i < children; i++) {
        kill(pids[i], SIGKILL);
        waitpid(pids[i], NULL, 0);
    }
    return 0;
}
