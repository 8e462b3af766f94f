//! A read-only ext4 disk (`--disk IMAGE`, built by `tools/mkext4.sh`) mounted at
//! `/mnt`: `ext4test` reads its files back through the page cache (a 16 MiB pattern
//! by read and pread, a sparse file, a symbolic link, a directory listing), maps one
//! shared and private, executes a program from the disk and is refused writes. The
//! same image as the root (`--rootfs`) runs the program from inside it. `readahead`
//! checks the readahead window against the device counters, drop_caches, O_DIRECT,
//! readahead(2) and fadvise.

use guest_tests::{build_once, repo_root, scratch_dir, Guest};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The ext4 test image `name`, with `ext4test` itself in `bin/` (built by
/// `tools/mkext4.sh` with `extra`).
/// Callers that pass the same name must pass the same `extra`.
pub fn test_image(name: &str, extra: &[&str]) -> PathBuf {
    build_once();
    // Tests that share an image (same name, same arguments) wait here while the first
    // builds it; the script then finds it up to date.
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _building = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let image = scratch_dir().join(name);
    let prog = repo_root().join("userland/target/bin/ext4test");
    let status = Command::new(repo_root().join("tools/mkext4.sh"))
        .arg(&image)
        .arg("--prog")
        .arg(&prog)
        .args(extra)
        .status()
        .expect("run tools/mkext4.sh");
    assert!(status.success(), "mkext4.sh failed");
    image
}

#[test]
fn files_on_an_ext4_disk_read_map_and_exec() {
    let image = test_image("ext4-test.img", &[]);
    let prog = repo_root().join("userland/target/bin/ext4test");
    let out = Guest {
        disk: Some(image),
        timeout: Duration::from_secs(300),
        run: vec![prog.display().to_string()],
        ..Guest::small()
    }
    .boot();
    out.expect_line("ext4: vda mounted read-only at /mnt");
    for check in [
        "big_read",
        "big_pread",
        "big_stat",
        "sparse",
        "symlink",
        "listing",
        "small_file",
        "mmap_shared",
        "mmap_private_cow",
        "exec_from_disk",
        "blockdev_read",
        "blockdev_restricted",
        "write_erofs",
        "create_erofs",
    ] {
        out.expect_line(&format!("ext4test: check {check}: ok"));
    }
    out.expect_status(0);
}

#[test]
fn an_ext4_image_as_the_root() {
    let image = test_image("ext4-root.img", &[]);
    let out = Guest {
        rootfs: Some(image),
        swap_mib: 64,
        timeout: Duration::from_secs(300),
        run: vec![
            "/bin/ext4test".into(),
            "--dir".into(),
            "/".into(),
            "--root".into(),
            "--dev".into(),
            "vdb".into(),
        ],
        ..Guest::small()
    }
    .boot();
    out.expect_line("ext4: vdb mounted read-only at /");
    for check in [
        "big_read",
        "listing",
        "exec_from_disk",
        "root_mounts",
        "write_erofs",
    ] {
        out.expect_line(&format!("ext4test: check {check}: ok"));
    }
    out.expect_status(0);
}

#[test]
fn readahead_fadvise_drop_caches_and_direct_io() {
    let image = test_image("ext4-seq.img", &["--seq-mib", "64"]);
    let prog = repo_root().join("userland/target/bin/readahead");
    let out = Guest {
        disk: Some(image),
        timeout: Duration::from_secs(400),
        run: vec![prog.display().to_string(), "--dev".into(), "vda".into()],
        ..Guest::small()
    }
    .boot();
    for check in [
        "drop_caches_mincore",
        "sequential_vs_random",
        "direct_read",
        "direct_alignment",
        "readahead_syscall",
        "fadvise_willneed_dontneed",
        "fadvise_bad_advice",
        "fadvise_pipe",
    ] {
        out.expect_line(&format!("readahead: check {check}: ok"));
    }
    out.expect_status(0);
}

#[test]
fn a_file_larger_than_memory_streams_without_swap() {
    let image = test_image("ext4-stream.img", &["--seq-mib", "320"]);
    let prog = repo_root().join("userland/target/bin/readahead");
    let out = Guest {
        disk: Some(image),
        mem_mib: 256,
        timeout: Duration::from_secs(400),
        run: vec![prog.display().to_string(), "--stream".into()],
        ..Guest::small()
    }
    .boot();
    out.expect_line("readahead: check stream_bigger_than_ram: ok");
    out.expect_status(0);
}
