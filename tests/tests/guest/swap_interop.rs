//! A swap area crosses between Peios and Linux 6.12 (issue 16): Peios swaps to a swap
//! file on an ext4 image (`--disk-rw`), then Linux, booted by the anchor
//! (`../shared/tools/linux-anchor/run-linux.sh`) with that image at /mnt, turns a copy
//! of the file on through a loop device (its disks are read-only), swaps to it, turns
//! it off and prints the header page as it left it; Peios then turns on a disk holding
//! that header and swaps to it. `swapinterop` runs every step on both kernels.
//!
//! Ignored by default: it needs the anchor, which lives outside this repository and
//! downloads Debian's kernel on first use. Run it with
//! `cargo test --test guest swap_interop -- --ignored`.

use guest_tests::{build_once, repo_root, scratch_dir, Guest};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Size of the swap file and of the disk given back to Peios.
const SWAP_MIB: u64 = 16;

fn anchor() -> PathBuf {
    repo_root().join("../shared/tools/linux-anchor/run-linux.sh")
}

fn run_linux(args: &[&str]) -> String {
    let out = Command::new(anchor())
        .args([
            "--cpus", "2", "--nodes", "1", "--mem", "1024", "--accel", "tcg",
        ])
        .args(args)
        .output()
        .expect("run the Linux anchor");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The loop driver of the anchor's kernel (the anchor unpacks the package on first use).
fn loop_module() -> Option<PathBuf> {
    let cache = std::env::var("ANCHOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/linux-anchor")
        });
    let modules = std::fs::read_dir(cache.join("x/lib/modules")).ok()?;
    modules
        .filter_map(Result::ok)
        .map(|d| d.path().join("kernel/drivers/block/loop.ko.xz"))
        .find(|p| p.is_file())
}

/// The header page Linux printed, laid out on a disk of `SWAP_MIB`.
fn disk_from_header(log: &str, path: &Path) {
    let mut page = vec![0u8; 4096];
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("swapinterop: header ") else {
            continue;
        };
        let (offset, hex) = rest.split_once(' ').expect("header OFFSET HEX");
        let offset: usize = offset.parse().expect("offset");
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let byte = std::str::from_utf8(pair).expect("hex");
            page[offset + i] = u8::from_str_radix(byte, 16).expect("hex byte");
        }
    }
    assert_eq!(
        &page[4086..],
        b"SWAPSPACE2",
        "no swap signature in Linux's header:\n{log}"
    );
    page.resize((SWAP_MIB << 20) as usize, 0);
    std::fs::write(path, page).expect("write the disk");
}

#[test]
#[ignore = "needs ../shared/tools/linux-anchor, which downloads Linux 6.12"]
fn swap_areas_cross_between_peios_and_linux() {
    assert!(
        anchor().is_file(),
        "no Linux anchor at {}",
        anchor().display()
    );
    build_once();
    let prog = repo_root().join("userland/target/bin/swapinterop");
    let prog = prog.to_str().expect("a UTF-8 path");
    if loop_module().is_none() {
        // First use: the anchor fetches and unpacks its kernel package.
        run_linux(&[&repo_root()
            .join("userland/target/bin/hello")
            .display()
            .to_string()]);
    }
    let module = loop_module().expect("loop.ko.xz in the anchor's kernel package");

    // Peios swaps to the file on the image.
    let image = scratch_dir().join("swap-interop.img");
    let status = Command::new(repo_root().join("tools/mkext4.sh"))
        .arg(&image)
        .args(["--swapfile-mib", &SWAP_MIB.to_string()])
        .arg("--file")
        .arg(&module)
        .status()
        .expect("run tools/mkext4.sh");
    assert!(status.success(), "mkext4.sh failed");
    let out = Guest {
        cpus: 2,
        mem_mib: 256,
        swap_mib: 0,
        disk: Some(image.clone()),
        disk_writable: true,
        timeout: Duration::from_secs(300),
        run: vec![prog.into(), "--dev".into(), "/mnt/swapfile".into()],
        ..Default::default()
    }
    .boot();
    for check in ["peios_swapon", "peios_pageout_reads_back", "peios_swapoff"] {
        out.expect_line(&format!("swapinterop: check {check}: ok"));
    }
    out.expect_status(0);

    // Linux turns on what Peios wrote, swaps to it and shows its header.
    let log = run_linux(&[
        "--disk",
        image.to_str().expect("a UTF-8 path"),
        prog,
        "--linux",
        "/mnt/swapfile",
        &format!(
            "/mnt/files/{}",
            module.file_name().unwrap().to_string_lossy()
        ),
    ]);
    for check in [
        "linux_copied",
        "linux_swapon",
        "linux_pageout_reads_back",
        "linux_swapoff",
        "linux_header_read",
    ] {
        assert!(
            log.contains(&format!("swapinterop: check {check}: ok")),
            "Linux: {check} failed:\n{log}"
        );
    }

    // Peios turns on a disk with the header as Linux left it.
    let disk = scratch_dir().join("swap-from-linux.img");
    disk_from_header(&log, &disk);
    let out = Guest {
        cpus: 2,
        mem_mib: 256,
        swap_mib: 0,
        disk: Some(disk),
        disk_writable: true,
        timeout: Duration::from_secs(300),
        run: vec![prog.into(), "--dev".into(), "/dev/vda".into()],
        ..Default::default()
    }
    .boot();
    for check in ["peios_swapon", "peios_pageout_reads_back", "peios_swapoff"] {
        out.expect_line(&format!("swapinterop: check {check}: ok"));
    }
    out.expect_status(0);
}
