//! Shared mappings of disk files under reclaim in a booted guest: a 256 MiB guest
//! without swap and an ext4 disk holding a 320 MiB pattern file runs `sharedfile`,
//! which maps the file `MAP_SHARED`, `PROT_READ` and checks every word of it twice,
//! end to end. Reclaim must unmap the cold page-cache pages the mapping holds so the
//! page cache can drop them, and the second pass reads them from the disk again,
//! identical (before reclaim aged these mappings, the program never finished). First,
//! on the cold file, 4 MiB read in order under `MADV_RANDOM` takes a major fault per
//! page and the next 4 MiB without advice only a few, and pass 2 takes at most one
//! major fault per 256 pages (the fault readahead keeps ahead of the reader). The
//! same program passes on Linux 6.12 (`run-linux.sh --cpus 2 --nodes 1 --mem 256
//! --disk IMAGE`).

use guest_tests::{repo_root, Guest};
use std::time::Duration;

#[test]
fn a_shared_file_mapping_larger_than_ram_reads_twice_identical() {
    // The streaming test's image: its 320 MiB file is larger than the guest's RAM.
    let image = crate::ext4::test_image("ext4-stream.img", &["--seq-mib", "320"]);
    let prog = repo_root()
        .join("userland/target/bin/sharedfile")
        .display()
        .to_string();
    let out = Guest {
        cpus: 2,
        nodes: 1,
        mem_mib: 256,
        swap_mib: 0,
        disk: Some(image),
        timeout: Duration::from_secs(180),
        run: vec![prog, "/mnt/seq.bin".into()],
        ..Default::default()
    }
    .boot();
    out.expect_line("ext4: vda mounted read-only at /mnt");
    for check in [
        "map",
        "readahead_advice",
        "pass1",
        "dropped_after_pass1",
        "pass2",
        "resident_after_pass2",
    ] {
        out.expect_line(&format!("sharedfile: check {check}: ok"));
    }
    out.expect_line("sharedfile: done");
    out.expect_status(0);
}
