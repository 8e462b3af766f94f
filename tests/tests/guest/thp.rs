//! Transparent huge pages in a booted guest: the `thp` program checks huge faults
//! (AnonHugePages in meminfo and smaps, thp_fault_alloc), splits by mprotect and
//! partial munmap keeping every byte, fork copy-on-write on a huge page, the
//! enabled modes and MADV_NOHUGEPAGE, khugepaged collapsing a populated region, and
//! the knobs refused to a restricted process; and hugetlb mappings over the pools.

use guest_tests::{repo_root, Guest};

#[test]
fn thp_program_passes() {
    let bin = repo_root().join("userland/target/bin/thp");
    let out = Guest {
        cpus: 4,
        nodes: 2,
        mem_mib: 2048,
        run: vec![bin.display().to_string()],
        ..Default::default()
    }
    .boot();
    out.expect_status(0);
    for check in [
        "fault_maps_huge_page",
        "smaps_anon_huge",
        "vmstat_fault_alloc",
        "mprotect_splits",
        "split_keeps_data",
        "partial_munmap_keeps_data",
        "fork_child_sees_then_copies",
        "fork_parent_keeps_data",
        "nohugepage_under_always",
        "always_without_advice",
        "never_gives_none",
        "khugepaged_collapses",
        "collapse_keeps_data",
        "restricted_writer_refused",
    ] {
        out.expect_line(&format!("thp: check {check}: ok"));
    }
    out.expect_line("thp: all 17 checks passed");
}

/// Hugetlb mappings in a booted guest: the `hugetlb` program checks reservation at
/// mmap (HugePages_Rsvd), a fault taking a reserved page (HugePages_Free), ENOMEM
/// past the unreserved pages, EINVAL for an unaligned munmap, SIGBUS past the pool
/// with MAP_NORESERVE, a shared hugetlb mapping shared with a fork child, and (in a
/// 4 GiB guest, where node 1 has a free GiB) a shared 1 GiB mapping.
#[test]
fn hugetlb_program_passes() {
    let bin = repo_root().join("userland/target/bin/hugetlb");
    let out = Guest {
        cpus: 4,
        nodes: 2,
        mem_mib: 4096,
        run: vec![bin.display().to_string()],
        ..Default::default()
    }
    .boot();
    out.expect_status(0);
    for check in [
        "mmap_reserves",
        "fault_takes_reserved_page",
        "mmap_past_unreserved_enomem",
        "unaligned_munmap_einval",
        "munmap_gives_back",
        "noreserve_overrun_sigbus",
        "shared_across_fork",
        "all_back",
        "gigantic_mapping",
    ] {
        out.expect_line(&format!("hugetlb: check {check}: ok"));
    }
    out.expect_line("hugetlb: all 12 checks passed");
}
