//! `vm.swappiness` in a booted guest: a 256 MiB two-node guest with swap and an ext4 disk
//! holding a 128 MiB file runs `swappiness`. First, with no page cache, at swappiness 0
//! it fills most of free memory (more than one node has): not a page may be swapped
//! while the other node has room (`spill`). Then it caches the file and touches
//! anonymous memory past what is free, once at swappiness 0 and once at 200. At 0
//! reclaim drops the page cache and hardly swaps; at 200 it swaps and keeps the cache
//! (`pswpout` in /proc/vmstat, `Cached` in /proc/meminfo); the two runs must differ by
//! a quarter of the file both ways, so a kernel ignoring the knob fails.

use guest_tests::{build_once, repo_root, scratch_dir, Guest};
use std::process::Command;
use std::time::Duration;

#[test]
fn swappiness_moves_reclaim_between_page_cache_and_swap() {
    build_once();
    let image = scratch_dir().join("swappiness.img");
    let status = Command::new(repo_root().join("tools/mkext4.sh"))
        .arg(&image)
        .args(["--seq-mib", "128"])
        .status()
        .expect("run tools/mkext4.sh");
    assert!(status.success(), "mkext4.sh failed");
    let prog = repo_root().join("userland/target/bin/swappiness");
    let out = Guest {
        cpus: 2,
        nodes: 2,
        mem_mib: 256,
        swap_mib: 512,
        disk: Some(image),
        timeout: Duration::from_secs(600),
        run: vec![prog.display().to_string()],
        ..Default::default()
    }
    .boot();
    for check in [
        "default",
        "spill",
        "file_cached_0",
        "reads_back_0",
        "file_cached_200",
        "reads_back_200",
        "zero_drops_cache",
        "high_swaps",
        "split_moves",
        "restricted_eacces",
        "restored",
    ] {
        out.expect_line(&format!("swappiness: check {check}: ok"));
    }
    out.expect_status(0);
}
