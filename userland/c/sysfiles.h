/* Reading and writing the kernel's text files for the C test programs:
 * meminfo("Key"), a /proc/meminfo value (kB for most keys; -1 if absent or unreadable),
 * and write_file(path, text), one write(2) of `text` (its result; errno kept). */
#ifndef SYSFILES_H
#define SYSFILES_H
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, n) && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    int r = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return r;
}
#endif
