//! Shared and huge memory beyond the suite's `shm` program: the `memfd` program in a
//! booted guest checks F_SEAL_WRITE against the exact count of writable shared
//! mappings (through splits, mremap, fork, exit and MADV_DONTFORK), F_SEAL_FUTURE_WRITE
//! and F_SEAL_EXEC, memfd_create's MFD_EXEC/MFD_NOEXEC_SEAL and vm.memfd_noexec,
//! MFD_HUGETLB memfds on the hugetlb pools (HugePages_Free/Rsvd at every step), and
//! hugetlbfs mounted with mount(2) (refused to a restricted caller), plus the
//! hugetlbfs every guest has at /dev/hugepages. The same binary passes on Linux 6.12
//! (/dev/hugepages aside, which Linux's anchor does not mount).

use guest_tests::{repo_root, Guest};

#[test]
fn memfd_program_passes() {
    let bin = repo_root().join("userland/target/bin/memfd");
    let out = Guest {
        cpus: 2,
        nodes: 1,
        mem_mib: 1024,
        run: vec![bin.display().to_string()],
        ..Default::default()
    }
    .boot();
    out.expect_status(0);
    for check in [
        "write-seal-counts-split-and-moved-mappings",
        "write-seal-waits-for-a-forked-childs-mapping",
        "write-seal-ignores-a-dontfork-mapping-in-the-child",
        "future-write-seal-keeps-read-only-maps-read-only",
        "memfd-flags-einval",
        "noexec-seal-mode-and-seals",
        "exec-seal-on-an-executable-memfd-seals-writes",
        "memfd-noexec-1-seals-plain-memfds",
        "memfd-noexec-2-refuses-mfd-exec",
        "memfd-noexec-restricted-write-refused",
        "hugetlb-memfd-sized-in-huge-pages",
        "hugetlb-memfd-reserves-at-mmap-and-faults-take-pages",
        "hugetlb-memfd-shared-across-fork",
        "hugetlb-memfd-pages-stay-with-the-file",
        "hugetlb-memfd-mmap-past-the-pool-enomem",
        "hugetlbfs-mount-and-refusals",
        "hugetlbfs-file-shared-by-path",
        "hugetlbfs-size-limit-and-unlink-frees",
        "hugetlbfs-umount",
    ] {
        out.expect_line(&format!("memfd: check {check}: ok"));
    }
    out.expect_line("memfd: restricted mount -1 errno 1, umount -1 errno 1");
    out.expect_line("memfd: check dev-hugepages: ok (mounted)");
    out.expect_line("memfd: all checks passed");
}
