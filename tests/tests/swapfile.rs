//! Swap files in a booted guest: a 256 MiB guest with a 256 MiB swap partition
//! (`--swap`, on at boot) and a writable ext4 disk (`--disk-rw`) holding a 64 MiB
//! swap file runs `swapfiletest`: the privilege gate, a file with holes and a file
//! without a header refused, `/proc/swaps` Type `file`, priorities (the file first
//! when above the partition, spilling onto the partition past it; the partition first
//! when the file is below), swapoff of the file bringing every page back, the data
//! verified byte for byte after swap-in and after swapoff.

use guest_tests::{build_once, repo_root, scratch_dir, Guest};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_swap_file_on_ext4_swaps_beside_the_partition() {
    build_once();
    let image = scratch_dir().join("swapfile.img");
    let status = Command::new(repo_root().join("tools/mkext4.sh"))
        .arg(&image)
        .args(["--swapfile-mib", "64"])
        .status()
        .expect("run tools/mkext4.sh");
    assert!(status.success(), "mkext4.sh failed");
    let prog = repo_root().join("userland/target/bin/swapfiletest");
    let out = Guest {
        cpus: 2,
        nodes: 2,
        mem_mib: 256,
        swap_mib: 256,
        release: true,
        disk: Some(image),
        disk_writable: true,
        timeout: Duration::from_secs(600),
        run: vec![prog.display().to_string()],
        ..Default::default()
    }
    .boot();
    out.expect_line("Adding swap area /mnt/swapfile");
    for check in [
        "restricted_eperm",
        "holes_einval",
        "no_header_einval",
        "missing_enoent",
        "swapon_file",
        "swapon_busy",
        "swapoff_not_area",
        "priority_file_first",
        "file_reads_back",
        "spill_to_partition",
        "fill_reads_back",
        "swapoff_file",
        "swapoff_reads_back",
        "priority_partition_first",
        "partition_reads_back",
        "restricted_swapoff_eperm",
        "swapoff_empty",
    ] {
        out.expect_line(&format!("swapfiletest: check {check}: ok"));
    }
    out.expect_status(0);
}
