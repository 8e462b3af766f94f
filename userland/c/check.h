/* The check helpers of the C test programs: `begin("name")` starts a check, `ok()`
 * prints `PROG: check NAME: ok`, and a failed EXPECT prints `PROG: check NAME: FAILED
 * (...)` and exits 1. Define PROG (the program's name, a string literal) before
 * including. */
#ifndef CHECK_H
#define CHECK_H
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *current = "";

static void fail(const char *what, long got) {
    printf(PROG ": check %s: FAILED (%s: got %ld, errno %d %s)\n", current, what, got, errno,
           strerror(errno));
    fflush(stdout);
    exit(1);
}

#define EXPECT(cond) do { if (!(cond)) fail(#cond, 0); } while (0)
#define EXPECT_EQ(val, want) do { long v_ = (long)(val); if (v_ != (long)(want)) fail(#val " == " #want, v_); } while (0)
/* `call` fails with errno `e`. */
#define EXPECT_ERR(call, e) do { errno = 0; long r_ = (long)(call); if (r_ != -1 || errno != (e)) fail(#call " fails with " #e, r_); } while (0)

static void begin(const char *name) { current = name; }
static void ok(void) { printf(PROG ": check %s: ok\n", current); fflush(stdout); }
#endif
