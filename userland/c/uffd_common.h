/* Userfaultfd definitions (as Linux's uapi header has them: musl ships none) and the
 * check helpers, for the C uffd test programs. Define PROG (the program's name, a
 * string literal) before including. */
#ifndef UFFD_COMMON_H
#define UFFD_COMMON_H
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "check.h"

#define PG 4096L
#define UFFD_API 0xAAULL
#define UFFD_EVENT_PAGEFAULT 0x12
#define UFFD_EVENT_FORK 0x13
#define UFFD_FEATURE_EVENT_FORK (1ULL << 1)
#define UFFDIO_REGISTER_MODE_MISSING 1ULL

struct uffdio_api { uint64_t api, features, ioctls; };
struct uffdio_range { uint64_t start, len; };
struct uffdio_register { struct uffdio_range range; uint64_t mode, ioctls; };
struct uffdio_copy { uint64_t dst, src, len, mode; int64_t copy; };
struct uffd_msg {
    uint8_t event, reserved1;
    uint16_t reserved2;
    uint32_t reserved3;
    union {
        struct { uint64_t flags, address; uint32_t ptid; } pagefault;
        struct { uint32_t ufd; } fork;
        struct { uint64_t a, b, c; } raw;
    } arg;
};

#define IOC(dir, nr, size) (((unsigned long)(dir) << 30) | ((unsigned long)(size) << 16) | (0xAAUL << 8) | (nr))
#define UFFDIO_API_IOC IOC(3, 0x3F, sizeof(struct uffdio_api))
#define UFFDIO_REGISTER_IOC IOC(3, 0x00, sizeof(struct uffdio_register))
#define UFFDIO_COPY_IOC IOC(3, 0x03, sizeof(struct uffdio_copy))

/* A userfaultfd past its handshake with `features`; -1 if refused. */
static int new_uffd(uint64_t features, uint64_t *offered) {
    int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct uffdio_api api = { .api = UFFD_API, .features = features };
    if (ioctl(fd, UFFDIO_API_IOC, &api) != 0)
        return -1;
    if (offered)
        *offered = api.features;
    return fd;
}

static int register_missing(int fd, char *at, long len) {
    struct uffdio_register reg = { .range = { (uint64_t)(uintptr_t)at, (uint64_t)len },
                                   .mode = UFFDIO_REGISTER_MODE_MISSING };
    return ioctl(fd, UFFDIO_REGISTER_IOC, &reg);
}

#endif
