/* meminfo("Key"): a /proc/meminfo value (kB for most keys), -1 if absent or unreadable. */
#ifndef MEMINFO_H
#define MEMINFO_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#endif
