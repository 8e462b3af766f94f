//! The machine as the kernel sees it: CPUs and nodes from ACPI, logical CPU numbering,
//! IO-APIC routing of legacy lines, and the boot report the harness checks.

use crate::{
    arch::{
        paging::{phys_offset, phys_to_virt},
        percpu,
    },
    interrupts::IRQ_COUNTS,
    kprintln,
    mem::numa::NodeMemory,
    time,
};
use alloc::{string::String, vec::Vec};
use core::{fmt::Write, sync::atomic::Ordering};
use drivers::{
    acpi::{parse_topology, CpuEntry, DirectMapHandler, Topology},
    apic::{route_legacy_irq, set_irq_masked, vectors},
    pit,
};
use sched::{CpuId, MAX_CPUS};

/// Reads the ACPI tables; a machine without usable tables is one CPU on one node.
pub fn discover(rsdp: u64) -> Topology {
    let handler = DirectMapHandler {
        phys_offset: phys_offset(),
        clock_ns: time::now_ns,
    };
    // SAFETY: `rsdp` comes from the PVH start info and the direct map covers the tables.
    match unsafe { parse_topology(handler, rsdp) } {
        Ok(topo) if !topo.cpus.is_empty() => topo,
        other => {
            log::warn!(
                "no usable ACPI topology ({:?}); assuming one CPU, one node",
                other.err()
            );
            Topology {
                node_count: 1,
                distances: alloc::vec![10],
                ..Default::default()
            }
        }
    }
}

/// Numbers the CPUs (the boot CPU is 0, the rest in MADT order) and creates their per-CPU
/// blocks. Returns the number of CPUs.
pub fn assign_cpu_ids(topo: &Topology, bsp_apic: u32) -> u32 {
    let bsp = topo
        .cpus
        .iter()
        .copied()
        .find(|c| c.apic_id == bsp_apic)
        .unwrap_or(CpuEntry {
            apic_id: bsp_apic,
            processor_uid: 0,
            node: 0,
        });
    let mut ordered: Vec<CpuEntry> = alloc::vec![bsp];
    ordered.extend(topo.cpus.iter().copied().filter(|c| c.apic_id != bsp_apic));
    if ordered.len() > MAX_CPUS {
        log::warn!(
            "{} CPUs present, using the first {}",
            ordered.len(),
            MAX_CPUS
        );
        ordered.truncate(MAX_CPUS);
    }
    for (i, c) in ordered.iter().enumerate() {
        percpu::create(CpuId(i as u32), c.apic_id, c.node);
    }
    ordered.len() as u32
}

/// Routes every ISA line to the boot CPU on vector `IOAPIC_BASE + gsi`, masked.
pub fn init_ioapic(topo: &Topology, bsp_apic: u32) {
    let Some(io) = topo.io_apics.first() else {
        log::warn!("no IO-APIC");
        return;
    };
    let virt = phys_to_virt(io.address) as u64;
    // SAFETY: the IO-APIC MMIO page is in the direct map (below 4 GiB).
    let lines = unsafe { drivers::apic::ioapic_lines(virt) };
    for irq in 0..16u8 {
        let (gsi, flags) = topo
            .override_for(irq)
            .map_or((u32::from(irq), 0), |o| (o.gsi, o.flags));
        if gsi < io.gsi_base || gsi >= io.gsi_base + u32::from(lines) || gsi >= 24 {
            continue;
        }
        // SAFETY: as above; the vector has a handler in `interrupts`.
        unsafe {
            route_legacy_irq(
                virt,
                io.gsi_base,
                gsi,
                flags,
                vectors::IOAPIC_BASE + gsi as u8,
                bsp_apic as u8,
            )
        };
    }
    crate::interrupts::set_ioapic(virt, io.gsi_base);
    log::info!(
        "IO-APIC {} at {:#x}: {} lines, ISA IRQs routed",
        io.id,
        io.address,
        lines
    );
}

/// The first IO-APIC's mapped address and GSI base (set by `init_ioapic`).
/// Proves legacy routing works: the PIT's IRQ 0 must arrive through the IO-APIC.
pub fn check_legacy_irq_routing(topo: &Topology) {
    let Some(io) = topo.io_apics.first() else {
        return;
    };
    let gsi = topo.override_for(0).map_or(0, |o| o.gsi);
    let virt = phys_to_virt(io.address) as u64;
    let before = IRQ_COUNTS[gsi as usize].load(Ordering::Relaxed);
    // SAFETY: the line was routed by `init_ioapic`.
    unsafe { set_irq_masked(virt, io.gsi_base, gsi, false) };
    pit::one_shot(1193); // 1 ms
                         // Spin, not `hlt`: nothing else is armed to wake this CPU, so a PIT interrupt that
                         // never arrives would halt the boot for good (a CI boot of 8 vCPUs on a loaded
                         // host once stopped right here for 180 s) instead of reporting it at the deadline.
    let deadline = time::now_ns() + 500_000_000;
    while IRQ_COUNTS[gsi as usize].load(Ordering::Relaxed) == before && time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    // SAFETY: as above.
    unsafe { set_irq_masked(virt, io.gsi_base, gsi, true) };
    if IRQ_COUNTS[gsi as usize].load(Ordering::Relaxed) > before {
        kprintln!("IOAPIC: PIT IRQ 0 delivered on GSI {gsi}");
    } else {
        log::error!("IOAPIC: PIT IRQ 0 never arrived on GSI {gsi}");
    }
}

/// Prints the topology lines the harness compares against the QEMU arguments.
pub fn report(topo: &Topology, nodes: &[NodeMemory]) {
    for node in nodes {
        let mut cpus = String::new();
        for cpu in (0..MAX_CPUS as u32)
            .filter_map(|c| percpu::get(CpuId(c)))
            .filter(|c| c.node == node.node)
        {
            let _ = write!(
                cpus,
                "{}{}",
                if cpus.is_empty() { "" } else { "," },
                cpu.cpu_id.0
            );
        }
        let mut distances = String::new();
        for to in 0..topo.node_count {
            let _ = write!(distances, " {}", topo.distance(node.node, to));
        }
        kprintln!(
            "NODE {}: cpus {} memory {} MiB free of {} MiB (SRAT) distances{}",
            node.node,
            if cpus.is_empty() { "-" } else { &cpus },
            node.free_bytes() >> 20,
            node.srat_bytes >> 20,
            distances
        );
    }
}
