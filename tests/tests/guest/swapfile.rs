//! Swap files in a booted guest: a 192 MiB guest with a 256 MiB swap partition
//! (`--swap`, on at boot) and a writable ext4 disk (`--disk-rw`) holding a 32 MiB
//! swap file runs `swapfiletest`: the privilege gate, a file with holes and a file
//! without a header refused, `/proc/swaps` Type `file`, priorities (the file first
//! when above the partition, spilling onto the partition past it; the partition first
//! when the file is below), swapoff of the file bringing every page back, the data
//! verified byte for byte after swap-in and after swapoff. With an ext4 root
//! (`--rootfs`), init still turns the swap partition on at boot.

use guest_tests::{build_once, repo_root, scratch_dir, Guest};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_swap_file_on_ext4_swaps_beside_the_partition() {
    build_once();
    let image = scratch_dir().join("swapfile.img");
    let status = Command::new(repo_root().join("tools/mkext4.sh"))
        .arg(&image)
        .args(["--swapfile-mib", "32"])
        .status()
        .expect("run tools/mkext4.sh");
    assert!(status.success(), "mkext4.sh failed");
    let prog = repo_root().join("userland/target/bin/swapfiletest");
    let out = Guest {
        cpus: 2,
        nodes: 2,
        mem_mib: 192,
        swap_mib: 256,
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

/// With an ext4 image as the root, `/etc` is the image's: init still turns on the
/// swap partition the initramfs lists (the kernel passes it as `--swapdev`), and a
/// program from the image pages out to it and reads the pages back.
#[test]
fn the_swap_partition_is_on_with_an_ext4_root() {
    build_once();
    let image = scratch_dir().join("swap-root.img");
    let prog = repo_root().join("userland/target/bin/swapfiletest");
    let status = Command::new(repo_root().join("tools/mkext4.sh"))
        .arg(&image)
        .arg("--prog")
        .arg(&prog)
        .status()
        .expect("run tools/mkext4.sh");
    assert!(status.success(), "mkext4.sh failed");
    let out = Guest {
        rootfs: Some(image),
        swap_mib: 64,
        timeout: Duration::from_secs(300),
        run: vec![
            "/bin/swapfiletest".into(),
            "--boot-check".into(),
            "/dev/vda".into(),
        ],
        ..Guest::small()
    }
    .boot();
    out.expect_line("ext4: vdb mounted read-only at /");
    out.expect_line("init: swapon /dev/vda");
    for check in ["boot_swapon", "boot_pageout"] {
        out.expect_line(&format!("swapfiletest: check {check}: ok"));
    }
    out.expect_status(0);
}
