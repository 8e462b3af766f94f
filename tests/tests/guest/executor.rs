//! The per-CPU executor in a booted guest: all-pairs cross-CPU spawns and wakes, each task
//! checked to run on the CPU it was sent to, and per-CPU timers that never fire early.

use guest_tests::Guest;

fn all_pairs(cpus: u32, nodes: u32, mem_mib: u32) {
    let out = Guest {
        cpus,
        nodes,
        mem_mib,
        append: "test=executor".into(),
        ..Default::default()
    }
    .boot();
    assert_eq!(out.status, 0, "executor test failed:\n{}", out.log);
    let pairs = cpus * (cpus - 1);
    let hops = pairs * 200;
    out.expect_line(&format!(
        "executor: {hops} cross-CPU spawns and {hops} cross-CPU wakes over {pairs} pairs"
    ));
    out.expect_line("executor test passed");
}

#[test]
fn executor_all_pairs_2cpu() {
    all_pairs(2, 1, 1024);
}

#[test]
fn executor_all_pairs_4cpu_2node() {
    all_pairs(4, 2, 2048);
}

#[test]
fn executor_all_pairs_8cpu_4node() {
    all_pairs(8, 4, 4096);
}

#[test]
fn release_kernel_boots_and_runs_the_executor_test() {
    let out = Guest {
        cpus: 4,
        nodes: 2,
        mem_mib: 2048,
        append: "test=executor".into(),
        ..Default::default()
    }
    .boot();
    assert_eq!(out.status, 0, "release kernel failed:\n{}", out.log);
    out.expect_line("executor test passed");
    assert!(
        !out.log.contains("kernel image at 0xffffffff80100000"),
        "release kernel was not relocated:\n{}",
        out.log
    );
}
