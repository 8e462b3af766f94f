/* Reads a byte where the read may raise SIGBUS (a page past the end of a file, a
 * hugetlb page the pool could not give): `probe(p)` returns the byte, or -2 when the
 * read was SIGBUS. */
#ifndef SIGPROBE_H
#define SIGPROBE_H
#include <setjmp.h>
#include <signal.h>
#include <string.h>

static sigjmp_buf probe_env;

static void on_sigbus(int sig) {
    (void)sig;
    siglongjmp(probe_env, 1);
}

/* Reads the byte at `p` in this process: the byte, or -2 when the read is SIGBUS. */
static int probe(volatile const char *p) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, &old);
    int got;
    if (sigsetjmp(probe_env, 1) == 0)
        got = (unsigned char)*p;
    else
        got = -2;
    sigaction(SIGBUS, &old, NULL);
    return got;
}
#endif
