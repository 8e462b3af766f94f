//! Swap in a booted guest: a 256 MiB guest with a 512 MiB swap disk (`--swap`),
//! turned on by init at boot, runs `swaptest`: the privilege gate and errno of
//! swapon/swapoff, MADV_PAGEOUT/COLD with swap readahead and one device read for two
//! threads faulting on one page, DAMOS pageout of a cold region, 150% of RAM filled by two threads and read back byte-identical,
//! the same across fork, no slot leaked after munmap, swapoff bringing every page
//! back. Without swap the same fill ends in the OOM killer, not in corruption.

use guest_tests::{scratch_dir, userland_bin, Guest};
use std::time::Duration;

/// The guest both tests use: 2 vCPUs on 2 nodes (a reclaim task each), 256 MiB.
fn guest(swap_mib: u32, run: Vec<String>) -> Guest {
    Guest {
        cpus: 2,
        nodes: 2,
        mem_mib: 256,
        swap_mib,
        timeout: Duration::from_secs(600),
        run,
        ..Default::default()
    }
}

#[test]
fn one_and_a_half_ram_through_swap_reads_back_identical() {
    // A second disk of zeroes: no swap header, so swapon must say EINVAL.
    let blank = scratch_dir().join("swap-blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).expect("write the blank disk");
    let out = Guest {
        disk: Some(blank),
        ..guest(
            512,
            vec![
                userland_bin("swaptest"),
                "--bad-dev".into(),
                "/dev/vdb".into(),
            ],
        )
    }
    .boot();
    out.expect_status(0);
    out.expect_line("init: swapon /dev/vda");
    for check in [
        "area_listed",
        "swap_total",
        "restricted_eperm",
        "swapon_busy",
        "swapon_enoent",
        "swapon_bad_header",
        "pageout",
        "pageout_written",
        "pageout_reads_back",
        "swap_readahead",
        "cold",
        "two_faults_one_read",
        "thp_pageout",
        "thp_reads_back",
        "damos_pageout",
        "damos_reads_back",
        "fill_and_verify",
        "traffic",
        "fork",
        "no_slot_leak",
        "swapoff",
        "swapon_again",
    ] {
        out.expect_line(&format!("swaptest: check {check}: ok"));
    }
}

#[test]
fn without_swap_the_same_fill_ends_in_the_oom_killer() {
    let out = guest(0, vec![userland_bin("swaptest")]).boot();
    // Killed by SIGKILL (128 + 9), never a wrong byte.
    out.expect_status(137);
    out.expect_line("Out of memory: Killed process");
    assert!(
        !out.log.contains("pages differ"),
        "a fill without swap must die, not corrupt:\n{}",
        out.log
    );
}

/// The acceptance guest: 512 MiB on 2 nodes, 2 vCPUs, the release kernel.
fn acceptance_guest(swap_mib: u32) -> Guest {
    Guest {
        cpus: 2,
        nodes: 2,
        mem_mib: 512,
        swap_mib,
        timeout: Duration::from_secs(600),
        run: vec![userland_bin("swapfill")],
        ..Default::default()
    }
}

#[test]
#[ignore = "40-90 s of a 2-vCPU guest; run by hand: cargo test --test guest swap::four -- --ignored"]
fn four_threads_fill_three_times_ram_through_swap_and_read_it_back() {
    // 1.5 GiB in 512 MiB: over a GiB must go to the 2 GiB swap disk and come back.
    let out = acceptance_guest(2048).boot();
    eprintln!("swapfill with swap: {:?}", out.elapsed);
    out.expect_line("init: swapon /dev/vda");
    for check in ["fill_and_verify", "vmswap", "proc_swaps", "child_passed"] {
        out.expect_line(&format!("swapfill: check {check}: ok"));
    }
    out.expect_status(0);
}

#[test]
fn without_swap_the_fill_is_oom_killed_and_the_parent_goes_on() {
    let out = acceptance_guest(0).boot();
    eprintln!("swapfill without swap: {:?}", out.elapsed);
    out.expect_line("Out of memory: Killed process");
    for check in ["child_oom_killed", "parent_goes_on", "memory_back"] {
        out.expect_line(&format!("swapfill: check {check}: ok"));
    }
    // The child dies in its fill: it never gets to report on its bytes.
    assert!(
        !out.log.contains("swapfill: check fill_and_verify"),
        "a fill without swap must die, not verify:\n{}",
        out.log
    );
    out.expect_status(0);
}
