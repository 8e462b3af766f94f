//! Debian's own `stress-ng`, dynamically linked against glibc, unmodified: its root tree
//! (the package and every library it needs, from `tools/stress-ng-rootfs.sh`) goes into
//! the initramfs with `--files`, and glibc's loader runs it as on Linux. Beside it, the
//! `timers` program checks the calls stress-ng leans on (interval timers, getrusage and
//! times, capget/capset, the sysfs CPU lists) and the signal waits and timerfd against
//! the answers Linux 6.12 gives.

use guest_tests::{repo_root, Guest};
use std::{path::PathBuf, process::Command, time::Duration};

/// The stressors of the command line, with their instance counts.
const STRESSORS: [(&str, u32); 6] = [
    ("vm", 2),
    ("mmap", 2),
    ("fault", 2),
    ("mremap", 1),
    ("brk", 1),
    ("stack", 1),
];

/// The stress-ng root tree, or `None` (with a message) when the package archive cannot
/// be reached (the script's status 3). Any other failure of the script fails the test.
fn stress_ng_root() -> Option<PathBuf> {
    let out = Command::new(repo_root().join("tools/stress-ng-rootfs.sh"))
        .output()
        .expect("run tools/stress-ng-rootfs.sh");
    if out.status.code() == Some(3) {
        eprintln!(
            "SKIPPED: stress-ng cannot be fetched (no network or apt): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    assert!(
        out.status.success(),
        "tools/stress-ng-rootfs.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("the script prints the tree's path"),
    );
    assert!(
        root.join("usr/bin/stress-ng").is_file(),
        "no usr/bin/stress-ng in {}",
        root.display()
    );
    Some(root)
}

#[test]
fn debian_stress_ng_runs_to_success() {
    let Some(root) = stress_ng_root() else {
        return;
    };
    let mut run: Vec<String> = vec![
        "/usr/bin/stress-ng".into(),
        "--temp-path".into(),
        "/tmp".into(),
    ];
    for (name, count) in STRESSORS {
        run.push(format!("--{name}"));
        run.push(count.to_string());
    }
    run.extend(
        ["--vm-bytes", "256M", "--timeout", "5s", "--metrics"]
            .iter()
            .map(|s| s.to_string()),
    );
    let out = Guest {
        files: Some(root),
        run,
        mem_mib: 1024,
        timeout: Duration::from_secs(170),
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    out.expect_line("dispatching hogs: 2 vm, 2 mmap, 2 fault, 1 mremap, 1 brk, 1 stack");
    out.expect_line("successful run completed");
    for bad in [
        "unsuccessful run",
        "stress-ng: fail:",
        "stress-ng: error:",
        "Function not implemented",
        "terminated with unexpected signal",
    ] {
        assert!(
            !out.log.contains(bad),
            "{bad:?} in the stress-ng run:\n{}",
            out.log
        );
    }
    // The metrics table has a row per stressor, with CPU time counted by getrusage. A
    // worker still inside one long mremap or mmap pass when the time is up is killed
    // by stress-ng (which does not count that as a failure; its row is then empty), so
    // CPU time is required of the stressors that run in short steps.
    let mut with_cpu = 0;
    for (name, _) in STRESSORS {
        let row = out
            .lines()
            .find(|l| l.contains("stress-ng: metrc:") && l.split_whitespace().nth(3) == Some(name))
            .unwrap_or_else(|| panic!("no metrics row for {name}:\n{}", out.log));
        let fields: Vec<&str> = row.split_whitespace().skip(4).collect();
        let cpu_seconds: f64 =
            fields[2].parse::<f64>().unwrap() + fields[3].parse::<f64>().unwrap();
        println!("{row}");
        if cpu_seconds > 0.0 {
            with_cpu += 1;
        }
        if matches!(name, "vm" | "fault" | "brk") {
            assert!(
                cpu_seconds > 0.0,
                "no CPU time for {name}: {row}\n{}",
                out.log
            );
        }
    }
    assert!(
        with_cpu >= 4,
        "CPU time in only {with_cpu} rows:\n{}",
        out.log
    );
}

#[test]
fn posix_timers_rusage_caps_signals_answer_as_linux() {
    let timers = repo_root().join("userland/target/bin/timers");
    let out = Guest {
        run: vec![timers.display().to_string()],
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    for check in [
        "alarm-returns-seconds-left",
        "sigalrm-interrupts-sleep",
        "periodic-timer-repeats",
        "disarmed-timer-stays-quiet",
        "usec-out-of-range-einval",
        "fork-does-not-inherit-timer",
        "user-time-counts-the-spin",
        "sleep-is-not-cpu-time",
        "minor-faults-count-touched-pages",
        "reaped-child-time-counted",
        "times-in-ticks",
        "capget-bad-version-einval",
        "privileged-caller-has-ipc-lock",
        "capset-drop-refuses-mlock-and-raise",
        "one-cpuN-directory-per-cpu",
        "sigtimedwait-takes-pending-signal",
        "sigtimedwait-times-out-eagain",
        "sigtimedwait-woken-by-sender",
        "blocked-sigchld-waited-for",
        "sigsuspend-returns-after-handler",
        "pause-returns-after-handler",
        "sigsuspend-restores-the-mask",
        "blocking-read-waits-for-expiry",
        "periodic-expiries-accumulate",
        "disarmed-never-readable",
        "absolute-past-time-expires-at-once",
        "settime-on-a-pipe-einval",
        "statfs-tmp-is-tmpfs",
        "statfs-proc",
        "fstatfs-pipe-is-pipefs",
        "statfs-missing-enoent",
        "clone3-fork-like-child-exits-42",
        "clone3-pidfd-and-parent-tid",
        "clone3-nonzero-tail-e2big",
        "clone3-signal-in-flags-einval",
        "private-expedited-unregistered-eperm",
        "private-expedited-after-register",
        "membarrier-global",
        "fork-child-keeps-registration",
        "sa-restart-pipe-read-restarted",
        "no-sa-restart-pipe-read-eintr",
        "virtual-timer-still-while-asleep",
        "sigvtalrm-after-user-time",
        "sigprof-on-cpu-time",
        "cpu-timers-not-inherited",
    ] {
        out.expect_line(&format!("timers: check {check}: ok"));
    }
    out.expect_line("timers: all checks passed");
}
