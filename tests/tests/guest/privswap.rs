//! Private file mappings through swap in a booted guest: a 224 MiB guest with a
//! 512 MiB swap disk and an ext4 disk holding a 160 MiB file runs `privswap`, which
//! maps a 64 MiB memfd and the disk file `MAP_PRIVATE` and writes over both (224 MiB,
//! more than RAM): the private copies go to swap (`VmSwap`, smaps `Swap:`) and read
//! back identical, the files keep their own bytes, a forked child shares them and its
//! writes stay its own, `MADV_PAGEOUT` swaps them, `MADV_DONTNEED` reveals the files'
//! bytes, and swapoff brings the rest back. The same program passes on Linux 6.12
//! (`run-linux.sh --mem 224 --swap 512 --disk IMAGE`; at 192 MiB Linux's swapoff is
//! OOM-killed).

use guest_tests::{repo_root, Guest};
use std::time::Duration;

#[test]
fn private_file_copies_go_through_swap_and_read_back_identical() {
    let image = crate::ext4::test_image("privswap-ext4.img", &["--seq-mib", "160"]);
    let prog = repo_root()
        .join("userland/target/bin/privswap")
        .display()
        .to_string();
    let out = Guest {
        cpus: 2,
        nodes: 2,
        mem_mib: 224,
        swap_mib: 512,
        disk: Some(image),
        timeout: Duration::from_secs(400),
        run: vec![prog, "--ext4-mib".into(), "160".into()],
        ..Default::default()
    }
    .boot();
    out.expect_line("ext4: vdb mounted read-only at /mnt");
    for check in [
        "memfd_fill",
        "vmswap",
        "smaps_swap",
        "read_back",
        "files_untouched",
        "fork_child",
        "fork_parent_unchanged",
        "pageout",
        "dontneed_reveals_file",
        "swapoff",
        "swapon_again",
    ] {
        out.expect_line(&format!("privswap: check {check}: ok"));
    }
    out.expect_status(0);
}
