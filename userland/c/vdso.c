/* vdso: checks the vDSO the kernel maps into every program (AT_SYSINFO_EHDR).
 * Finds __vdso_clock_gettime, __vdso_gettimeofday, __vdso_time and __vdso_getcpu
 * through the image's own DT_HASH symbol table (as libc does) and checks each answer
 * against the real system call: a vDSO time lies between two syscall readings, getcpu
 * names the CPU the thread is pinned to, a clock the vDSO does not serve still gets the
 * kernel's answer, and /proc/self/maps names [vvar] and [vdso]. Prints
 * `vdso: check NAME: ok` per check; exits 1 on the first failure.
 * `vdso --bench SECONDS`: libc clock_gettime(CLOCK_MONOTONIC) calls per second. */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void check(int ok, const char *name) {
    if (!ok) {
        printf("vdso: check %s: FAILED\n", name);
        fflush(stdout);
        exit(1);
    }
    printf("vdso: check %s: ok\n", name);
}

/* The address of `name` in the vDSO at `base`, through DT_HASH, or NULL. */
static void *vdso_symbol(unsigned long base, const char *name) {
    Elf64_Ehdr *eh = (Elf64_Ehdr *)base;
    Elf64_Phdr *ph = (Elf64_Phdr *)(base + eh->e_phoff);
    Elf64_Dyn *dyn = NULL;
    unsigned long load = 0;
    int have_load = 0;
    for (int i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !have_load) {
            load = base + ph[i].p_offset - ph[i].p_vaddr;
            have_load = 1;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dyn = (Elf64_Dyn *)(base + ph[i].p_offset);
        }
    }
    if (!dyn || !have_load)
        return NULL;
    Elf32_Word *hash = NULL;
    Elf64_Sym *syms = NULL;
    const char *strs = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_HASH)
            hash = (Elf32_Word *)(load + dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_SYMTAB)
            syms = (Elf64_Sym *)(load + dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_STRTAB)
            strs = (const char *)(load + dyn->d_un.d_ptr);
    }
    if (!hash || !syms || !strs)
        return NULL;
    for (Elf32_Word i = 0; i < hash[1]; i++) {
        if (ELF64_ST_TYPE(syms[i].st_info) == STT_FUNC && syms[i].st_shndx != SHN_UNDEF &&
            strcmp(strs + syms[i].st_name, name) == 0)
            return (void *)(load + syms[i].st_value);
    }
    return NULL;
}

static long long ns_of(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static struct timespec sys_clock(clockid_t c) {
    struct timespec t;
    syscall(SYS_clock_gettime, c, &t);
    return t;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--bench") == 0) {
        int seconds = atoi(argv[2]);
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        long long calls = 0, end = ns_of(start) + seconds * 1000000000LL;
        do {
            for (int i = 0; i < 1000; i++)
                clock_gettime(CLOCK_MONOTONIC, &now);
            calls += 1000;
        } while (ns_of(now) < end);
        printf("vdso_bench clock_gettime calls_per_sec=%lld\n",
               calls * 1000000000LL / (ns_of(now) - ns_of(start)));
        return 0;
    }
    unsigned long base = getauxval(AT_SYSINFO_EHDR);
    check(base != 0 && memcmp((void *)base, ELFMAG, SELFMAG) == 0, "auxv-points-at-an-elf-image");

    typedef int (*clock_fn)(clockid_t, struct timespec *);
    typedef int (*tod_fn)(struct timeval *, void *);
    typedef time_t (*time_fn)(time_t *);
    typedef int (*cpu_fn)(unsigned *, unsigned *, void *);
    clock_fn vclock = (clock_fn)vdso_symbol(base, "__vdso_clock_gettime");
    tod_fn vtod = (tod_fn)vdso_symbol(base, "__vdso_gettimeofday");
    time_fn vtime = (time_fn)vdso_symbol(base, "__vdso_time");
    cpu_fn vcpu = (cpu_fn)vdso_symbol(base, "__vdso_getcpu");
    check(vclock && vtod && vtime && vcpu, "exports-the-four-calls");

    for (int round = 0; round < 1000; round++) {
        struct timespec a = sys_clock(CLOCK_MONOTONIC), v, b;
        if (vclock(CLOCK_MONOTONIC, &v) != 0)
            check(0, "monotonic-between-syscall-readings");
        b = sys_clock(CLOCK_MONOTONIC);
        if (!(ns_of(a) <= ns_of(v) && ns_of(v) <= ns_of(b)) || v.tv_nsec < 0 || v.tv_nsec >= 1000000000)
            check(0, "monotonic-between-syscall-readings");
    }
    check(1, "monotonic-between-syscall-readings");
    {
        struct timespec a = sys_clock(CLOCK_REALTIME), v, b;
        int r = vclock(CLOCK_REALTIME, &v);
        b = sys_clock(CLOCK_REALTIME);
        check(r == 0 && ns_of(a) <= ns_of(v) && ns_of(v) <= ns_of(b) && v.tv_sec > 1600000000,
              "realtime-between-syscall-readings");
        struct timeval tv;
        struct timespec c = sys_clock(CLOCK_REALTIME);
        r = vtod(&tv, NULL);
        struct timespec d = sys_clock(CLOCK_REALTIME);
        long long us = tv.tv_sec * 1000000LL + tv.tv_usec;
        check(r == 0 && ns_of(c) / 1000 <= us && us <= ns_of(d) / 1000, "gettimeofday-agrees");
        time_t t1 = syscall(SYS_time, NULL), tt = 0, t = vtime(&tt), t2 = syscall(SYS_time, NULL);
        check(t == tt && t1 <= t && t <= t2, "time-agrees");
    }
    {
        struct timespec v = {0, 0};
        check(vclock(CLOCK_PROCESS_CPUTIME_ID, &v) == 0, "other-clocks-reach-the-kernel");
        check(vclock(1000, &v) == -EINVAL, "bad-clock-gets-einval");
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (unsigned want = 0; want < (unsigned)ncpu && want < 4; want++) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(want, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            check(0, "getcpu-names-the-pinned-cpu");
        unsigned vc = 99, vn = 99, sc = 98, sn = 98;
        int r = vcpu(&vc, &vn, NULL);
        syscall(SYS_getcpu, &sc, &sn, NULL);
        if (r != 0 || vc != want || vc != sc || vn != sn)
            check(0, "getcpu-names-the-pinned-cpu");
    }
    check(1, "getcpu-names-the-pinned-cpu");
    {
        FILE *maps = fopen("/proc/self/maps", "r");
        char line[512];
        int vvar = 0, vdso = 0;
        unsigned long vdso_start = 0;
        while (maps && fgets(line, sizeof line, maps)) {
            if (strstr(line, "[vvar]"))
                vvar = 1;
            if (strstr(line, "[vdso]")) {
                vdso = 1;
                vdso_start = strtoul(line, NULL, 16);
            }
        }
        check(vvar && vdso && vdso_start == base, "maps-names-vvar-and-vdso");
    }
    {
        pid_t pid = fork();
        if (pid == 0) {
            struct timespec v;
            _exit(vclock(CLOCK_MONOTONIC, &v) == 0 && v.tv_sec >= 0 ? 0 : 1);
        }
        int status = -1;
        waitpid(pid, &status, 0);
        check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork-child-keeps-the-vdso");
    }
    printf("vdso: all checks passed\n");
    return 0;
}
