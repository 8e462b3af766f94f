//! The kernel heap against hostile userland (issue 20): pipes and syscall buffers
//! refused near the heap's cap, and every shape a restricted process once used to
//! exhaust the heap (mincore over 64 GiB, 64,000 VMAs, fork and thread bombs) ending in an
//! errno, never a panic. Its own module: `heapbomb` is one of the suite's longest
//! boots, and libtest starts tests in name order, so it should not come last.

use guest_tests::{userland_bin, Guest};

/// Boots `program args` in a `mem_mib` guest; it must exit 0 with every check of
/// `checks` passed (`PROGRAM: check NAME: ok`) and the kernel's heap never exhausted.
fn run_checked(mem_mib: u32, program: &str, args: &[&str], checks: &[&str]) {
    let mut run = vec![userland_bin(program)];
    run.extend(args.iter().map(|a| a.to_string()));
    let out = Guest {
        mem_mib,
        run,
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    for check in checks {
        out.expect_line(&format!("{program}: check {check}: ok"));
    }
    assert!(
        !out.log.contains("memory allocation of"),
        "the kernel ran out of heap:\n{}",
        out.log
    );
}

#[test]
fn pipes_and_syscall_buffers_refused_near_the_heap_cap() {
    // Restricted processes fill pipes until the kernel refuses one with ENOMEM (its heap
    // near the cap), then probe the other caller-sized buffers; before they were
    // allocated fallibly, this panicked the kernel on a failed 64 KiB allocation.
    run_checked(
        1024,
        "pipebomb",
        &[],
        &[
            "children-forked",
            "pipe-flood-refused-with-enomem",
            "children-reaped",
            "heap-use-back",
            "pipe-works-again",
        ],
    );
}

#[test]
fn kernel_heap_bounded_against_a_restricted_process() {
    // 1 GiB and the release kernel, as the shapes were first seen on: threads-max 8192,
    // RLIMIT_NPROC 4096. (The debug kernel takes minutes to fork and reap 4,000 children
    // under TCG; the release one seconds.)
    run_checked(
        1024,
        "heapbomb",
        &["--no-flood"],
        &[
            "mincore-64g-thread-0",
            "mincore-64g-thread-1",
            "maps-twice-read-whole",
            "fork-with-64000-vmas-2",
            "fork-bomb-eagain",
            "thread-bomb-eagain",
            "pid_max-exhausted-eagain",
            "threads-max-eagain",
            "tasks-back",
            "memfree-back",
        ],
    );
}

#[test]
fn vmas_of_many_processes_refused_before_the_heap_cap() {
    // Processes of 64,000 VMAs each until the kernel refuses one. The heap may grow to
    // a quarter of RAM: 256 MiB reaches that cap with a handful of processes, where
    // 1 GiB took 22 (most of a minute of TCG).
    run_checked(
        256,
        "heapbomb",
        &["--flood-only"],
        &[
            "vma-flood-refused-before-the-heap-ran-out",
            "vma-flood-heap-use-back",
        ],
    );
}
