//! UFFD_EVENT_FORK in a booted guest: the `uffd_fork` program forks with a range
//! registered on a userfaultfd that negotiated the event; its handler thread reads
//! the event (fork returns only then), gets the child's new userfaultfd from it and
//! serves the child's faults there while the parent's stay on the first; without the
//! feature the child's range fills with zeros. The same binary passes on Linux 6.12.

use guest_tests::{repo_root, Guest};

/// Boots `program` (a C uffd test in userland/target/bin) alone in a small guest.
fn boot_program(program: &str) -> guest_tests::Outcome {
    let bin = repo_root().join("userland/target/bin").join(program);
    let out = Guest {
        cpus: 2,
        nodes: 1,
        mem_mib: 512,
        run: vec![bin.display().to_string()],
        ..Default::default()
    }
    .boot();
    out.expect_status(0);
    out
}

#[test]
fn uffd_fork_event_passes() {
    let out = boot_program("uffd_fork");
    for check in [
        "api-offers-event-fork",
        "fork-event-gives-the-child-a-userfaultfd",
        "parent-faults-stay-on-the-parents-context",
        "without-event-fork-the-child-is-not-registered",
    ] {
        out.expect_line(&format!("uffd_fork: check {check}: ok"));
    }
    out.expect_line("uffd_fork: all checks passed");
}

/// The kernel's writes outside a system call on a page a userfaultfd holds: a signal
/// frame on such an alternate stack waits for the handler (a kernel that gave up killed
/// the process with SIGSEGV); a thread's exit does not wait for its tid word's page
/// (as Linux). The same binary passes on Linux 6.12.
#[test]
fn kernel_writes_outside_syscalls_wait_for_a_held_page() {
    let out = boot_program("uffd_kwrite");
    for check in [
        "userfaultfd",
        "signal-frame-on-a-held-altstack-waits-for-the-handler",
        "exit-does-not-wait-for-a-held-tid-page",
    ] {
        out.expect_line(&format!("uffd_kwrite: check {check}: ok"));
    }
    out.expect_line("uffd_kwrite: all checks passed");
}
