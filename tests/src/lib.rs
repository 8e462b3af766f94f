//! Boots the kernel in QEMU from host tests: builds it once, runs `qemu-run.sh` with a
//! topology and kernel arguments, and returns the serial log and the exit status. Every boot
//! has a timeout so a hung guest fails its test instead of blocking the suite.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The path of userland program `name` (built by `userland/build.sh`), as `--run` takes it.
pub fn userland_bin(name: &str) -> String {
    repo_root()
        .join("userland/target/bin")
        .join(name)
        .display()
        .to_string()
}

/// Target dir for the guest build, apart from the one `cargo test` holds locked.
/// A scratch directory for files the guest tests hand to QEMU (disk images).
pub fn scratch_dir() -> PathBuf {
    let dir = guest_target_dir().join("scratch");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

fn guest_target_dir() -> PathBuf {
    repo_root().join("target").join("guest")
}

/// Builds the release kernel with its KASLR relocation table, through
/// `tools/build-kernel.sh`; returns the kernel's path.
fn build_kernel() -> PathBuf {
    let out = Command::new(repo_root().join("tools/build-kernel.sh"))
        .env("CARGO_TARGET_DIR", guest_target_dir())
        .arg("--release")
        .output()
        .expect("run tools/build-kernel.sh");
    assert!(
        out.status.success(),
        "release kernel build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Builds the kernel (and userland, if present) once per test process. The guest tests
/// boot the release kernel, the one `./qemu-run.sh` and the benchmarks run: it keeps
/// overflow checks (see the workspace's release profile), and building one kernel
/// instead of a debug and a release one saves the test command a minute of compiling.
/// The `debug_assert!`s of `mm` and `sched` run in their host tests.
pub fn build_once() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let kernel = build_kernel();
            let userland = repo_root().join("userland").join("build.sh");
            if userland.exists() {
                let status = Command::new(&userland)
                    .status()
                    .expect("run userland/build.sh");
                assert!(status.success(), "userland build failed");
            }
            kernel
        })
        .clone()
}

/// Accelerator for test boots: `PEIOS_TEST_ACCEL` (tcg, kvm, auto), default tcg.
pub fn test_accel() -> String {
    std::env::var("PEIOS_TEST_ACCEL").unwrap_or_else(|_| "tcg".into())
}

/// A guest configuration.
#[derive(Clone, Debug)]
pub struct Guest {
    /// vCPUs.
    pub cpus: u32,
    /// NUMA nodes.
    pub nodes: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Kernel command line.
    pub append: String,
    /// `--run PATH ARGS...`, if any.
    pub run: Vec<String>,
    /// Wall-clock limit for the whole boot.
    pub timeout: Duration,
    /// A raw disk image to attach as a virtio block device (read-only, as the anchor's).
    pub disk: Option<PathBuf>,
    /// Attach `disk` writable instead (`--disk-rw`: the block-layer test writes it).
    pub disk_writable: bool,
    /// `--rootfs IMAGE`: an ext4 image as the root (`run` then names a program in it).
    pub rootfs: Option<PathBuf>,
    /// `--swap MIB`: a swap disk of that size, turned on at boot (0, the default for
    /// tests: none, so a test that does not ask for swap sees the memory it asked for).
    pub swap_mib: u32,
    /// `--files DIR`: a host folder copied into the initramfs, paths kept.
    pub files: Option<PathBuf>,
}

impl Guest {
    /// A small guest (2 vCPUs, one node, 512 MiB) for one program or kernel test.
    pub fn small() -> Guest {
        Guest {
            cpus: 2,
            nodes: 1,
            mem_mib: 512,
            ..Default::default()
        }
    }
}

impl Default for Guest {
    fn default() -> Self {
        Self {
            cpus: 4,
            nodes: 2,
            mem_mib: 2048,
            append: String::new(),
            run: Vec::new(),
            timeout: Duration::from_secs(180),
            disk: None,
            disk_writable: false,
            rootfs: None,
            swap_mib: 0,
            files: None,
        }
    }
}

/// What a boot produced.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status of qemu-run.sh (the guest's status; 1 for a kernel failure).
    pub status: i32,
    /// Serial console output.
    pub log: String,
    /// Wall time of the boot.
    pub elapsed: Duration,
}

impl Outcome {
    /// Lines of the console log.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.log.lines()
    }

    /// Asserts the guest's exit status (panics with the log otherwise).
    pub fn expect_status(&self, status: i32) {
        assert_eq!(
            self.status, status,
            "guest exit status {} (expected {status}):\n{}",
            self.status, self.log
        );
    }

    /// Panics with the log if `needle` is absent.
    pub fn expect_line(&self, needle: &str) {
        assert!(
            self.log.contains(needle),
            "expected {needle:?} in the guest log:\n{}",
            self.log
        );
    }
}

impl Guest {
    /// Boots the guest and waits for it to end.
    pub fn boot(&self) -> Outcome {
        build_once();
        let start = Instant::now();
        let mut cmd = Command::new(repo_root().join("qemu-run.sh"));
        cmd.env("CARGO_TARGET_DIR", guest_target_dir())
            .args(["--no-build", "--no-demo", "--accel", &test_accel()])
            .args([
                "--cpus",
                &self.cpus.to_string(),
                "--nodes",
                &self.nodes.to_string(),
            ])
            .args(["--mem", &format!("{}M", self.mem_mib)])
            .args(["--timeout", &self.timeout.as_secs().to_string()])
            .args(["--append", &self.append]);
        cmd.arg("--release");
        cmd.args(["--swap", &self.swap_mib.to_string()]);
        if let Some(disk) = &self.disk {
            cmd.arg(if self.disk_writable {
                "--disk-rw"
            } else {
                "--disk"
            })
            .arg(disk);
        }
        if let Some(files) = &self.files {
            cmd.arg("--files").arg(files);
        }
        if let Some(rootfs) = &self.rootfs {
            cmd.arg("--rootfs").arg(rootfs);
        }
        if !self.run.is_empty() {
            cmd.arg("--run").args(&self.run);
        }
        let output = cmd.output().expect("run qemu-run.sh");
        let log = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        // The kernel's timer watchdog found a CPU that lost its preemption timer.
        assert!(
            !log.contains("watchdog: "),
            "the kernel's timer watchdog fired:\n{log}"
        );
        let elapsed = start.elapsed();
        // Shown with `--nocapture`: where the suite's time goes, per test.
        eprintln!(
            "guest boot of {} took {:.1?}",
            std::thread::current().name().unwrap_or("?"),
            elapsed
        );
        Outcome {
            status: output.status.code().unwrap_or(-1),
            log,
            elapsed,
        }
    }
}

/// One `CPU n online: apic a node m` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLine {
    /// Logical CPU.
    pub cpu: u32,
    /// APIC id.
    pub apic: u32,
    /// Node.
    pub node: u32,
}

/// One `NODE n: cpus .. memory F MiB free of S MiB (SRAT) distances ..` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    /// Node.
    pub node: u32,
    /// CPUs on the node.
    pub cpus: Vec<u32>,
    /// Free MiB after boot allocations.
    pub free_mib: u64,
    /// MiB the SRAT assigns.
    pub srat_mib: u64,
    /// SLIT row.
    pub distances: Vec<u32>,
}

/// Parses the CPU lines of a boot log.
pub fn parse_cpus(log: &str) -> Vec<CpuLine> {
    log.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("CPU ")?;
            let (cpu, rest) = rest.split_once(" online: apic ")?;
            let (apic, node) = rest.split_once(" node ")?;
            Some(CpuLine {
                cpu: cpu.parse().ok()?,
                apic: apic.parse().ok()?,
                node: node.trim().parse().ok()?,
            })
        })
        .collect()
}

/// Parses the NODE lines of a boot log.
pub fn parse_nodes(log: &str) -> Vec<NodeLine> {
    log.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("NODE ")?;
            let (node, rest) = rest.split_once(": cpus ")?;
            let (cpus, rest) = rest.split_once(" memory ")?;
            let (free, rest) = rest.split_once(" MiB free of ")?;
            let (srat, rest) = rest.split_once(" MiB (SRAT) distances")?;
            Some(NodeLine {
                node: node.parse().ok()?,
                cpus: if cpus == "-" {
                    Vec::new()
                } else {
                    cpus.split(',').filter_map(|c| c.parse().ok()).collect()
                },
                free_mib: free.parse().ok()?,
                srat_mib: srat.parse().ok()?,
                distances: rest
                    .split_whitespace()
                    .filter_map(|d| d.parse().ok())
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_boot_report_lines() {
        let log = "CPU 0 online: apic 0 node 0\nCPU 3 online: apic 3 node 1\n\
                   NODE 1: cpus 2,3 memory 1000 MiB free of 1024 MiB (SRAT) distances 20 10\n";
        assert_eq!(
            parse_cpus(log),
            vec![
                CpuLine {
                    cpu: 0,
                    apic: 0,
                    node: 0
                },
                CpuLine {
                    cpu: 3,
                    apic: 3,
                    node: 1
                }
            ]
        );
        let nodes = parse_nodes(log);
        assert_eq!(nodes[0].cpus, vec![2, 3]);
        assert_eq!((nodes[0].free_mib, nodes[0].srat_mib), (1000, 1024));
        assert_eq!(nodes[0].distances, vec![20, 10]);
    }
}
