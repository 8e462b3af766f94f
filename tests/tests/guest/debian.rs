//! Debian's own static programs, unmodified, on the booted kernel: `busybox-static`'s
//! shell runs a script of applets joined by pipes, command substitution, subshells and
//! redirections, and every answer is checked. The package comes from the Debian archive
//! through `tools/debian-bin.sh` (downloaded once into target/debian).

use guest_tests::{repo_root, Guest};
use std::process::Command;

/// The path of `path` inside Debian package `package`, fetched on first use.
fn debian_bin(package: &str, path: &str) -> String {
    let out = Command::new(repo_root().join("tools/debian-bin.sh"))
        .args([package, path])
        .output()
        .expect("run tools/debian-bin.sh");
    assert!(
        out.status.success(),
        "cannot fetch {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn debian_busybox_shell_runs_applets() {
    let busybox = debian_bin("busybox-static", "bin/busybox");
    let busybox_path = busybox.clone();
    let script = [
        "echo arith=$((6*7))",
        "echo root: $(ls / | sort | tr '\\n' ' ')",
        "echo sum=$(seq 1 100 | awk '{s+=$1} END {print s}')",
        "printf 'pear\\napple\\nfig\\n' | sort | head -n 1",
        "(exit 3); echo status=$?",
        "echo md5 $(echo hello | md5sum)",
        "echo base=$(basename /a/b/c.txt .txt)",
        "echo applets=$(busybox --list | wc -l)",
        "echo vmrss=$(grep -c VmRSS /proc/self/status)",
        "echo size=$(wc -c < /proc/self/cmdline)",
        "echo arg0=$(tr '\\000' '\\n' < /proc/$$/cmdline | head -n 1)",
        "echo arg1=$(tr '\\000' '\\n' < /proc/$$/cmdline | sed -n 2p)",
        "cd /proc && echo cwd=$(pwd)",
        "echo quiet > /dev/null && echo redirect=ok",
        "sleep 0.1 && echo slept",
        "echo words=$(echo one two three | wc -w)",
        "echo free_total=$(busybox free | awk '/^Mem:/ {print ($2 > 100000)}')",
        "echo ps_init=$(busybox ps | grep -c '^ *1 ')",
        "echo top_pid_header=$(busybox top -b -n 1 | grep -c '^ *PID *PPID')",
        // The shell's redirections and coreutils-style applets on the tmpfs at /tmp.
        "echo hi > /tmp/x && echo tmp=$(cat /tmp/x)",
        "mkdir -p /tmp/d/e && echo one >> /tmp/d/e/f && echo two >> /tmp/d/e/f && echo lines=$(wc -l < /tmp/d/e/f)",
        "mv /tmp/x /tmp/d/y && echo moved: $(ls /tmp/d | tr '\\n' ' ')",
        "rm -r /tmp/d && echo left=$(ls -a /tmp | wc -l)",
    ]
    .join("; ");
    let out = Guest {
        run: vec![busybox.clone(), "sh".into(), "-c".into(), script],
        timeout: std::time::Duration::from_secs(150),
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    out.expect_line("arith=42");
    out.expect_line("root: bin dev etc");
    out.expect_line("sum=5050");
    out.expect_line("apple");
    out.expect_line("status=3");
    out.expect_line("md5 b1946ac92492d2347c6235b4d2611184 -");
    out.expect_line("base=c");
    out.expect_line("vmrss=1");
    out.expect_line("cwd=/proc");
    out.expect_line("arg0=/bin/busybox");
    out.expect_line("arg1=sh");
    out.expect_line("redirect=ok");
    out.expect_line("slept");
    out.expect_line("words=3");
    // free (sysinfo), ps (/proc/<pid>/stat and cmdline) and top (/proc/stat too).
    out.expect_line("free_total=1");
    out.expect_line("ps_init=1");
    out.expect_line("top_pid_header=1");
    out.expect_line("tmp=hi");
    out.expect_line("lines=2");
    out.expect_line("moved: e y");
    out.expect_line("left=2");
    let applets: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("applets="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no applet count:\n{}", out.log));
    // The same binary lists the same applets on the host's Linux.
    let host = Command::new(&busybox_path)
        .arg("--list")
        .output()
        .expect("run busybox on the host");
    let host_applets = String::from_utf8_lossy(&host.stdout).lines().count() as u32;
    assert_eq!(
        applets, host_applets,
        "busybox --list in the guest and on the host"
    );
    let size: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("size="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cmdline size:\n{}", out.log));
    assert!(size > 0, "wc -c of /proc/self/cmdline was 0");
}
