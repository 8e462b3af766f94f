//! Private mappings of hugetlb files and the permission calls around them: the
//! `hugepriv` program in a booted guest maps an MFD_HUGETLB memfd and a hugetlbfs file
//! `MAP_PRIVATE` and checks HugePages_Free/Rsvd after every step (the whole range
//! reserved at mmap, a read of a file page free, a copy or a hole's page using up a
//! reservation, a fork child's unreserved copy SIGBUS when the pool has no unreserved
//! page, a MAP_NORESERVE overrun SIGBUS), hugetlbfs's mount options, and chmod/fchmod
//! on tmpfs, memfd and hugetlbfs files with F_SEAL_EXEC. The same binary passes on
//! Linux 6.12 with the same figures (run-linux.sh --cpus 2 --nodes 1 --mem 1024).

use guest_tests::{repo_root, Guest};

#[test]
fn hugepriv_program_passes() {
    let bin = repo_root().join("userland/target/bin/hugepriv");
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
        "private-memfd-reserves-its-range-and-copies-on-write",
        "private-fork-child-copy-without-reservation-sigbus",
        "private-fork-child-copies-from-free-pages",
        "private-mmap-past-the-pool-enomem",
        "private-hugetlbfs-noreserve-overrun-sigbus",
        "private-hugetlbfs-sees-shared-writes-until-it-writes",
    ] {
        out.expect_line(&format!("hugepriv: check {check}: ok"));
    }
    // Linux 6.12's figures for the steps that move the counters most.
    for line in [
        "private-memfd-reserves-its-range-and-copies-on-write: private-mapped: free 3 rsvd 3",
        "private-memfd-reserves-its-range-and-copies-on-write: private-read-hole: free 1 rsvd 1",
        "private-fork-child-copy-without-reservation-sigbus: child-sigbus: free 1 rsvd 1",
        "private-hugetlbfs-noreserve-overrun-sigbus: child-took-the-whole-pool: free 0 rsvd 0",
    ] {
        out.expect_line(&format!("hugepriv: {line}"));
    }
    out.expect_line("hugepriv: all checks passed");
}
