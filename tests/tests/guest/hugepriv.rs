//! Private mappings of hugetlb files and the permission calls around them: the
//! `hugepriv` program in a booted guest maps an MFD_HUGETLB memfd and a hugetlbfs file
//! `MAP_PRIVATE` and checks HugePages_Free/Rsvd after every step (the whole range
//! reserved at mmap, a read of a file page free, a copy or a hole's page using up a
//! reservation, a fork child's unreserved copy SIGBUS when the pool has no unreserved
//! page, a MAP_NORESERVE overrun SIGBUS), hugetlbfs's mount options (min_size= reserved
//! from mount to unmount, size= over every file and private reservations, nr_inodes=,
//! uid=/gid=/mode= on the root, EINVAL/ENOMEM for bad ones), and chmod/fchmod/fchmodat/
//! fchmodat2 on tmpfs, memfd and hugetlbfs files (owner only: a restricted caller gets
//! EPERM, and the rewritten descriptor decides its opens) with F_SEAL_EXEC, and the
//! chown family (privileged only; set-ID bits dropped as Linux drops them), and
//! hugetlbfs's statfs counts. The same
//! binary prints the same lines on Linux 6.12 (run-linux.sh --cpus 2 --nodes 1 --mem 1024).

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
        "hugetlbfs-option-refusals",
        "hugetlbfs-min-size-reserved-while-mounted",
        "hugetlbfs-size-limit-counts-private-reservations",
        "hugetlbfs-nr-inodes",
        "hugetlbfs-uid-gid-mode-own-the-root",
        "hugetlbfs-uid-gid-mode-restricted-create",
        "chmod-tmpfs-rewrites-the-descriptor",
        "fchmod-memfd-and-exec-seal",
        "chmod-hugetlbfs-and-hugetlb-memfd",
        "chown-tmpfs-memfd-hugetlbfs",
        "hugetlbfs-statfs-counts",
    ] {
        out.expect_line(&format!("hugepriv: check {check}: ok"));
    }
    // Linux 6.12's figures for the steps that move the counters most.
    for line in [
        "private-memfd-reserves-its-range-and-copies-on-write: private-mapped: free 3 rsvd 3",
        "private-memfd-reserves-its-range-and-copies-on-write: private-read-hole: free 1 rsvd 1",
        "private-fork-child-copy-without-reservation-sigbus: child-sigbus: free 1 rsvd 1",
        "private-hugetlbfs-noreserve-overrun-sigbus: child-took-the-whole-pool: free 0 rsvd 0",
        "hugetlbfs-min-size-reserved-while-mounted: mounted: free 4 rsvd 2",
        "hugetlbfs-min-size-reserved-while-mounted: unlinked-refills-the-minimum: free 4 rsvd 2",
        "hugetlbfs-min-size-reserved-while-mounted: unmounted: free 4 rsvd 0",
    ] {
        out.expect_line(&format!("hugepriv: {line}"));
    }
    // The refusals a restricted caller meets, with Linux's errnos.
    out.expect_line("hugepriv: restricted create in a 0700 root of uid 1000: -1 errno 13");
    out.expect_line(
        "hugepriv: restricted chmod -1 errno 1, fchmod -1 errno 1, fchmodat -1 errno 1",
    );
    out.expect_line("hugepriv: restricted chown -1 errno 1, fchown -1 errno 1");
    out.expect_line("hugepriv: chown of a 6755 file leaves 100755");
    // statfs as Linux 6.12 reports it: the huge page as the block size, counts only
    // with size=/min_size= (-1 where unlimited), inodes left with a file open.
    for line in [
        "no-size-limit: type 958458f6 bsize 2097152 blocks 0 bfree 0 bavail 0 files 0 ffree 0",
        "min-size-only: type 958458f6 bsize 2097152 blocks -1 bfree -1 bavail -1 files -1 ffree -1",
        "size-8M-three-reserved: type 958458f6 bsize 2097152 blocks 4 bfree 1 bavail 1 files 5 ffree 3",
        "fstatfs-of-its-file: type 958458f6 bsize 2097152 blocks 4 bfree 1 bavail 1 files 5 ffree 3",
        "size-8M-emptied: type 958458f6 bsize 2097152 blocks 4 bfree 4 bavail 4 files 5 ffree 4",
        "hugetlb-memfd: type 958458f6 bsize 2097152 blocks 0 bfree 0",
    ] {
        out.expect_line(&format!("hugepriv: statfs {line}"));
    }
    out.expect_line("hugepriv: all checks passed");
}
