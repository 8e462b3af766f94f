//! Shared memory through swap in a booted guest: a 256 MiB guest with a 512 MiB swap
//! disk runs `shmswap`, which writes a tmpfs file and a memfd larger than the free
//! memory with a pattern, sees `pswpout` grow and `Shmem` shrink, reads every byte
//! back identical through `read(2)` and through shared mappings, truncates the memfd
//! (its swap slots come back), then turns swap off (every shmem page comes back) and
//! verifies again.

use guest_tests::{repo_root, Guest};
use std::time::Duration;

#[test]
fn tmpfs_and_memfd_pages_go_through_swap_and_read_back_identical() {
    let prog = repo_root()
        .join("userland/target/bin/shmswap")
        .display()
        .to_string();
    let out = Guest {
        cpus: 2,
        nodes: 2,
        mem_mib: 256,
        swap_mib: 512,
        timeout: Duration::from_secs(300),
        run: vec![prog, "--over".into(), "32".into()],
        ..Default::default()
    }
    .boot();
    out.expect_status(0);
    for check in [
        "fill",
        "pswpout",
        "shmem_shrank",
        "read_back",
        "pswpin",
        "map_back",
        "map_write_read",
        "truncate_frees_swap",
        "swapoff",
        "shmem_back",
        "read_after_swapoff",
        "map_after_swapoff",
        "swapon_again",
    ] {
        out.expect_line(&format!("shmswap: check {check}: ok"));
    }
}
