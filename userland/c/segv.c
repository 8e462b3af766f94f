/* segv: dereferences NULL. The kernel must kill only this process with SIGSEGV
 * (a shell-style status of 139 through `qemu-run.sh --run`). */
#include <stdio.h>

int main(void) {
    puts("segv: writing through a NULL pointer");
    fflush(stdout);
    *(volatile int *)0 = 1;
    puts("segv: still alive (wrong)");
    return 0;
}
