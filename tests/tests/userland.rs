//! User mode in a booted guest: init runs the userland suite (hello in Rust and musl C,
//! static-PIE, 64 threads, fork/exec/wait, signals, errno, security, the mm suite,
//! syscall fuzz), and `qemu-run.sh --run` runs one program and returns its exit status.

use guest_tests::{repo_root, Guest};

fn userland_bin(name: &str) -> String {
    repo_root()
        .join("userland/target/bin")
        .join(name)
        .display()
        .to_string()
}

/// Boots the default guest with `append` and checks the whole suite passed.
fn run_suite(append: &str) -> guest_tests::Outcome {
    let out = Guest {
        cpus: 4,
        nodes: 2,
        mem_mib: 2048,
        append: append.into(),
        ..Default::default()
    }
    .boot();
    assert_eq!(out.status, 0, "suite failed:\n{}", out.log);
    for name in [
        "ksyncd",
        "hello",
        "hello_c",
        "hello_pie",
        "threads",
        "forkexec",
        "signals",
        "errno",
        "security",
        "procmem",
        "tunables",
        "procgate",
        "kaslrleak",
        "pgroups",
        "mmtest",
        "uffd",
        "fuzz",
    ] {
        out.expect_line(&format!("TEST {name} ... ok"));
    }
    out.expect_line("19 passed, 0 failed");
    // fuzz ran twice: the syscall fuzzer and the short mm storm (fuzz --mm).
    out.expect_line("fuzz-mm: ok: ");
    out.expect_line("EXIT=0");
    // ksyncd applied the boot-time registry file; tunables checked every knob against it.
    out.expect_line("ksyncd: vm.stat_interval = 3 applied");
    out.expect_line("tunables: check max_map_count-limits-mmap: ok");
    out.expect_line("tunables: check mmap_min_addr-controls-low-mappings: ok");
    out.expect_line("tunables: check watermark_scale_factor-moves-watermarks: ok");
    out.expect_line("tunables: check restricted-writes-refused: ok");
    out.expect_line("tunables: check overcommit-2-refuses-past-limit: ok");
    out.expect_line("tunables: check nr_hugepages-fills-the-pools: ok");
    out.expect_line("tunables: check unprivileged_userfaultfd-gates-creation: ok");
    out.expect_line("tunables: check ksm-run-merges-equal-pages: ok");
    out.expect_line("tunables: check ksm-stop-and-unmerge: ok");
    out.expect_line("tunables: check damon-tells-hot-from-cold: ok");
    out.expect_line("tunables: check damon-restricted-refused: ok");
    out.expect_line("uffd: check faulting-thread-sees-copy: ok");
    out.expect_line("uffd: check sigkill-ends-parked-process: ok");
    out.expect_line("procgate(restricted): check mem-eacces: ok");
    out.expect_line("procgate: check privileged-reads-mem: ok");
    // The 64-thread job (plus its main thread and the pinned sibling): every vCPU ran
    // some of its threads (reported by the kernel).
    out.expect_line("threads: check counter: ok");
    let report = out
        .lines()
        .find(|l| l.starts_with("process threads: 66 threads ran on cpus"))
        .unwrap_or_else(|| panic!("no kernel CPU report for the threads program:\n{}", out.log));
    assert!(
        report.ends_with("cpus 0,1,2,3"),
        "threads did not use every CPU: {report}"
    );
    out
}

#[test]
fn init_runs_the_userland_suite() {
    let out = run_suite("kpti=off");
    out.expect_line("KPTI: off");
    // Without KPTI the kernel text is mapped (supervisor-only) in user tables.
    out.expect_line("[page fault: protection violation, read]");
}

#[test]
fn userland_suite_passes_under_kpti() {
    let out = run_suite("kpti=on");
    out.expect_line("KPTI: on");
    // Under KPTI a user read of kernel text finds no mapping at all.
    out.expect_line("[page fault: page not present, read]");
}

#[test]
fn run_returns_program_status_and_argv() {
    let out = Guest {
        run: vec![userland_bin("hello"), "7".into(), "x-arg".into()],
        ..Guest::small()
    }
    .boot();
    out.expect_status(7);
    out.expect_line("hello: argv[1]=7");
    out.expect_line("hello: argv[2]=x-arg");
    out.expect_line("hello from peios-rt");
}

#[test]
fn run_musl_static_c_program() {
    let out = Guest {
        run: vec![userland_bin("hello_c"), "3".into()],
        ..Guest::small()
    }
    .boot();
    out.expect_status(3);
    out.expect_line("hello from musl (static");
}

#[test]
fn oom_killer_in_a_small_guest() {
    let out = Guest {
        run: vec![userland_bin("oom")],
        ..Guest::small()
    }
    .boot();
    out.expect_status(0);
    out.expect_line("oom: check hog-killed-bystander-spared: ok");
    out.expect_line("oom: check adj-1000-chosen-first: ok");
    out.expect_line("oom: check oom_kill_allocating_task-kills-the-allocator: ok");
    out.expect_line("oom: check adj-lowering-needs-privilege: ok");
    // The kernel's own report of each kill.
    out.expect_line("oom_score_adj:1000");
    out.expect_line("(allocating task)");
}

#[test]
fn null_dereference_kills_only_that_process() {
    let out = Guest {
        run: vec![userland_bin("segv")],
        ..Guest::small()
    }
    .boot();
    out.expect_status(128 + 11);
    out.expect_line("fatal signal 11 (si_code 1, address 0x0)");
    // init reported the status: the kernel kept running after the fault.
    out.expect_line("EXIT=139");
}
