//! Boot tests: the topology matrix, the readable kernel-fault report, and the heap/memory
//! report, each checked against the QEMU arguments the test passed.

use guest_tests::{parse_cpus, parse_nodes, Guest};

/// Size of the initramfs the harness boots with, in MiB (rounded up).
fn initramfs_mib() -> u64 {
    let path = guest_tests::repo_root().join("userland/target/initramfs.cpio");
    std::fs::metadata(path).map_or(0, |m| m.len().div_ceil(1 << 20))
}

/// Memory the kernel may keep for itself on the boot node (image, heap, page tables).
fn boot_node_allowance_mib(mem_mib: u64) -> u64 {
    (mem_mib / 32).clamp(16, 256) + 32
}

fn check_topology(cpus: u32, nodes: u32, mem_mib: u32) {
    let guest = Guest {
        cpus,
        nodes,
        mem_mib,
        append: "test=boot".into(),
        ..Default::default()
    };
    let out = guest.boot();
    assert_eq!(
        out.status, 0,
        "boot failed (cpus {cpus}, nodes {nodes}):\n{}",
        out.log
    );
    out.expect_line(&format!("SMP: {cpus} of {cpus} cpus online"));
    out.expect_line("IOAPIC: PIT IRQ 0 delivered");
    // The legacy PIC's pin is masked on every CPU (its lines come through the IO-APIC);
    // LINT1 is the NMI pin on the boot CPU only.
    for cpu in 0..cpus {
        let lint1 = if cpu == 0 { "nmi" } else { "masked" };
        out.expect_line(&format!("CPU {cpu} pins: LINT0 masked, LINT1 {lint1}"));
    }

    let per_node_cpus = cpus / nodes;
    let mut seen = parse_cpus(&out.log);
    seen.sort_by_key(|c| c.cpu);
    assert_eq!(seen.len() as u32, cpus, "CPU lines:\n{}", out.log);
    for (i, line) in seen.iter().enumerate() {
        let expected_node = (i as u32 / per_node_cpus).min(nodes - 1);
        assert_eq!(line.cpu, i as u32);
        assert_eq!(line.apic, i as u32, "QEMU numbers APIC ids 0..n");
        assert_eq!(
            line.node, expected_node,
            "cpu {i} node (cpus {cpus}, nodes {nodes})\n{}",
            out.log
        );
    }

    let report = parse_nodes(&out.log);
    assert_eq!(report.len() as u32, nodes, "{}", out.log);
    let node_mib = u64::from(mem_mib / nodes);
    for node in &report {
        let expected_cpus: Vec<u32> = (0..cpus)
            .filter(|c| (c / per_node_cpus).min(nodes - 1) == node.node)
            .collect();
        assert_eq!(node.cpus, expected_cpus, "node {} cpus", node.node);
        // SRAT leaves out the legacy hole below 1 MiB on node 0.
        assert!(
            node.srat_mib + 1 >= node_mib && node.srat_mib <= node_mib,
            "node {} SRAT {} MiB, expected {node_mib}",
            node.node,
            node.srat_mib
        );
        // Other nodes lose at most the initramfs QEMU loads at the top of memory.
        let allowance = if node.node == 0 {
            boot_node_allowance_mib(u64::from(mem_mib))
        } else {
            2 + initramfs_mib()
        };
        assert!(
            node.free_mib <= node.srat_mib && node.free_mib + allowance >= node.srat_mib,
            "node {} free {} MiB of {} MiB\n{}",
            node.node,
            node.free_mib,
            node.srat_mib,
            out.log
        );
        let expected_distances: Vec<u32> = (0..nodes)
            .map(|to| if to == node.node { 10 } else { 20 })
            .collect();
        assert_eq!(node.distances, expected_distances);
    }
}

macro_rules! topology_test {
    ($name:ident, $cpus:expr, $nodes:expr, $mem:expr) => {
        #[test]
        fn $name() {
            check_topology($cpus, $nodes, $mem);
        }
    };
}

topology_test!(topology_1cpu_1node, 1, 1, 1024);
topology_test!(topology_2cpu_1node, 2, 1, 1024);
topology_test!(topology_2cpu_2node, 2, 2, 2048);
topology_test!(topology_4cpu_1node, 4, 1, 2048);
topology_test!(topology_4cpu_2node, 4, 2, 2048);
topology_test!(topology_4cpu_4node_4g, 4, 4, 4096);
topology_test!(topology_8cpu_1node, 8, 1, 2048);
topology_test!(topology_8cpu_2node, 8, 2, 2048);
topology_test!(topology_8cpu_4node, 8, 4, 4096);

#[test]
fn kernel_fault_prints_report_and_fails() {
    let out = Guest {
        append: "test=kernel_fault".into(),
        ..Guest::small()
    }
    .boot();
    assert_ne!(
        out.status, 0,
        "a kernel fault must fail the boot:\n{}",
        out.log
    );
    out.expect_line("EXCEPTION #PF page fault (vector 14)");
    out.expect_line("page not present on write from kernel");
    out.expect_line("CR2 0x00007bad00000000");
    out.expect_line("KERNEL PANIC on cpu");
}

/// The `KASLR:` line of a boot log.
fn kaslr_line(log: &str) -> String {
    log.lines()
        .find(|l| l.starts_with("KASLR: direct map at "))
        .unwrap_or_else(|| panic!("no KASLR line:\n{log}"))
        .to_string()
}

#[test]
fn kaslr_image_direct_map_and_heap_move_between_boots() {
    let guest = Guest {
        cpus: 1,
        nodes: 1,
        mem_mib: 512,
        append: "test=boot".into(),
        ..Default::default()
    };
    let field = |line: &str, name: &str| {
        line.split(name)
            .nth(1)
            .and_then(|r| r.split(',').next())
            .map(str::to_string)
    };
    // Each region must take at least two different addresses over three boots (the
    // image has ~480 bases, so two boots alone would agree once in ~480 runs).
    let mut lines = Vec::new();
    for _ in 0..3 {
        let out = guest.boot();
        out.expect_status(0);
        let line = kaslr_line(&out.log);
        assert_ne!(
            field(&line, "kernel image at ").as_deref(),
            Some("0xffffffff80100000"),
            "image at its link address: {line}"
        );
        lines.push(line);
    }
    for region in ["kernel image at ", "direct map at ", "heap at "] {
        let seen: std::collections::BTreeSet<_> = lines.iter().map(|l| field(l, region)).collect();
        assert!(
            seen.len() >= 2,
            "{region}did not move over three boots:\n{}",
            lines.join("\n")
        );
    }
}

#[test]
fn nokaslr_keeps_the_image_at_its_link_address() {
    let out = Guest {
        cpus: 1,
        nodes: 1,
        mem_mib: 512,
        append: "test=boot nokaslr".into(),
        ..Default::default()
    }
    .boot();
    out.expect_status(0);
    assert!(
        kaslr_line(&out.log).ends_with("kernel image at 0xffffffff80100000"),
        "{}",
        kaslr_line(&out.log)
    );
}
