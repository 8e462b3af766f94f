/* hello_c / hello_pie / hello_dyn: the musl C counterpart of the Rust `hello`.
 * Prints argv and selected environment variables, then exits with the status
 * given as argv[1] (0 when absent). Built three times by build.sh: `-static`
 * (ET_EXEC), `-static-pie` (ET_DYN that relocates itself) and dynamically linked
 * (a PIE whose PT_INTERP names musl's loader, /lib/ld-musl-x86_64.so.1, which the
 * kernel maps beside it and starts first; that copy exits with 90 unless
 * AT_BASE tells where the loader was placed). Needs from the kernel what musl's start-up needs:
 * arch_prctl(ARCH_SET_FS), set_tid_address, writev (stdio), ioctl(TIOCGWINSZ)
 * (failure tolerated), exit_group. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    const char *name = argv[0] ? argv[0] : "";
    const char *kind = strstr(name, "dyn")   ? "dynamic"
                       : strstr(name, "pie") ? "static-pie"
                                             : "static";
    if (strstr(name, "dyn")) {
        unsigned long base = getauxval(AT_BASE);
        printf("hello_c: loader at %s\n", base ? "AT_BASE" : "nowhere (AT_BASE 0)");
        if (!base)
            return 90;
    }
    printf("hello_c: argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("hello_c: argv[%d]=%s\n", i, argv[i]);
    int envc = 0;
    for (char **e = environ; *e; e++)
        envc++;
    printf("hello_c: envc=%d\n", envc);
    const char *names[] = {"PATH", "HOME", "TERM", "PEIOS_TEST"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v)
            printf("hello_c: env %s=%s\n", names[i], v);
    }
    printf("hello from musl (%s, main at %p, pid %d)\n", kind, (void *)main, (int)getpid());
    fflush(stdout);
    return argc > 1 ? atoi(argv[1]) : 0;
}
