//! userfaultfd beyond the suite's missing-mode program: `uffd_modes` in a booted guest
//! (kernel-mode faults that wait, write-protect mode with a live snapshot, minor mode
//! on a memfd with `UFFDIO_CONTINUE`, feature negotiation, SIGBUS and THREAD_ID, the
//! remove, remap and unmap events, UFFDIO_MOVE).

use guest_tests::{userland_bin, Guest};

#[test]
fn uffd_modes_pass_in_the_guest() {
    let out = Guest {
        run: vec![userland_bin("uffd_modes")],
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    for check in [
        "kernel-read-parks-and-reports",
        "read-completes-with-handler-page",
        "write-sends-handler-bytes",
        "file-read-waits-and-advances-once",
        "wp-write-faults-reported",
        "snapshot-equals-pre-write-contents",
        "live-pages-hold-the-writes",
        "kernel-write-to-protected-page-waits",
        "copy-mode-wp-protects-the-page",
        "minor-fault-continue-maps-cache-page",
        "uncached-page-faults-without-message",
        "api-reports-features",
        "api-unknown-feature-zeroes-struct",
        "sigbus-feature",
        "thread-id-feature",
        "madvise-dontneed-reports-remove",
        "mremap-move-reports-remap",
        "munmap-reports-unmap",
        "one-message-per-event",
        "move-resolves-fault",
        "move-from-hole",
        "move-shared-page-busy",
    ] {
        out.expect_line(&format!("uffd_modes: check {check}: ok"));
    }
    out.expect_line("uffd_modes: all ");
}
