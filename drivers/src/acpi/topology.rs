//! Turns MADT, SRAT, SLIT and FADT into the machine's [`Topology`].

use super::DirectMapHandler;
use acpi::{
    address::AddressSpace,
    sdt::{
        fadt::Fadt,
        madt::{Madt, MadtEntry},
        Signature,
    },
    AcpiError, AcpiTables,
};
use alloc::vec::Vec;

/// One CPU from the MADT with its SRAT node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuEntry {
    /// Local APIC (or x2APIC) id.
    pub apic_id: u32,
    /// ACPI processor UID.
    pub processor_uid: u32,
    /// NUMA node (proximity domain) from SRAT; 0 when there is no SRAT.
    pub node: u32,
}

/// One IO-APIC from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicEntry {
    /// IO-APIC id.
    pub id: u8,
    /// Physical MMIO base.
    pub address: u64,
    /// First global system interrupt it serves.
    pub gsi_base: u32,
}

/// A MADT interrupt source override: ISA `irq` arrives on `gsi` with these MPS flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptOverride {
    /// ISA IRQ number.
    pub irq: u8,
    /// Global system interrupt it is wired to.
    pub gsi: u32,
    /// MPS INTI flags (polarity bits 0-1, trigger bits 2-3).
    pub flags: u16,
}

/// A SRAT memory range and its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryAffinity {
    /// Node (proximity domain).
    pub node: u32,
    /// Physical base address.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// The range is hot-pluggable (not populated at boot).
    pub hot_pluggable: bool,
}

/// What the ACPI tables say about the machine.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    /// Enabled CPUs in MADT order; the first is normally the boot CPU.
    pub cpus: Vec<CpuEntry>,
    /// IO-APICs.
    pub io_apics: Vec<IoApicEntry>,
    /// ISA interrupt overrides.
    pub overrides: Vec<InterruptOverride>,
    /// Physical base of the local APIC.
    pub local_apic_address: u64,
    /// SRAT memory ranges; empty without SRAT.
    pub memory: Vec<MemoryAffinity>,
    /// Number of nodes (at least 1).
    pub node_count: u32,
    /// SLIT distances, row-major `node_count * node_count`; 10 local, 20 remote without SLIT.
    pub distances: Vec<u8>,
    /// PM timer I/O port and whether it is 32 bits wide.
    pub pm_timer: Option<(u16, bool)>,
}

impl Topology {
    /// Distance from node `from` to node `to` (10 = local).
    pub fn distance(&self, from: u32, to: u32) -> u8 {
        let n = self.node_count as usize;
        self.distances
            .get(from as usize * n + to as usize)
            .copied()
            .unwrap_or(if from == to { 10 } else { 20 })
    }

    /// The ISA interrupt override for `irq`, if the MADT has one.
    pub fn override_for(&self, irq: u8) -> Option<InterruptOverride> {
        self.overrides.iter().copied().find(|o| o.irq == irq)
    }
}

/// Why the tables could not be read.
#[derive(Debug)]
pub enum TopologyError {
    /// The RSDP/RSDT could not be parsed.
    Tables(AcpiError),
    /// The MADT is missing.
    NoMadt,
}

/// Reads the topology from the tables behind `rsdp_phys`.
///
/// # Safety
/// `rsdp_phys` must be the physical address of the firmware's RSDP and `handler` must map
/// physical memory correctly.
pub unsafe fn parse_topology(
    handler: DirectMapHandler,
    rsdp_phys: u64,
) -> Result<Topology, TopologyError> {
    // SAFETY: the caller vouches for the RSDP address and the handler.
    let tables = unsafe { AcpiTables::from_rsdp(handler, rsdp_phys as usize) }
        .map_err(TopologyError::Tables)?;
    let mut topo = Topology::default();

    let madt = tables.find_table::<Madt>().ok_or(TopologyError::NoMadt)?;
    topo.local_apic_address = u64::from(madt.get().local_apic_address);
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(cpu) if cpu.flags & 1 != 0 => topo.cpus.push(CpuEntry {
                apic_id: u32::from(cpu.apic_id),
                processor_uid: u32::from(cpu.processor_id),
                node: 0,
            }),
            MadtEntry::LocalX2Apic(cpu) if cpu.flags & 1 != 0 => topo.cpus.push(CpuEntry {
                apic_id: cpu.x2apic_id,
                processor_uid: cpu.processor_uid,
                node: 0,
            }),
            MadtEntry::IoApic(io) => topo.io_apics.push(IoApicEntry {
                id: io.io_apic_id,
                address: u64::from(io.io_apic_address),
                gsi_base: io.global_system_interrupt_base,
            }),
            MadtEntry::InterruptSourceOverride(o) => topo.overrides.push(InterruptOverride {
                irq: o.irq,
                gsi: o.global_system_interrupt,
                flags: o.flags,
            }),
            MadtEntry::LocalApicAddressOverride(o) => {
                topo.local_apic_address = o.local_apic_address
            }
            _ => {}
        }
    }
    drop(madt);

    let mut max_node = 0;
    for (phys, header) in tables.table_headers() {
        let bytes = table_bytes(&handler, phys as u64, header.length);
        if header.signature == Signature::SRAT {
            for affinity in parse_srat(bytes) {
                match affinity {
                    SratAffinity::Cpu { apic_id, node } => {
                        max_node = max_node.max(node);
                        if let Some(cpu) = topo.cpus.iter_mut().find(|c| c.apic_id == apic_id) {
                            cpu.node = node;
                        }
                    }
                    SratAffinity::Memory(m) => {
                        max_node = max_node.max(m.node);
                        topo.memory.push(m);
                    }
                }
            }
        }
    }
    topo.node_count = max_node + 1;

    let n = topo.node_count as usize;
    topo.distances = (0..n * n)
        .map(|i| if i / n == i % n { 10 } else { 20 })
        .collect();
    for (phys, header) in tables.table_headers() {
        if header.signature == Signature::SLIT {
            let bytes = table_bytes(&handler, phys as u64, header.length);
            if let Some((slit_nodes, matrix)) = parse_slit(bytes) {
                for from in 0..n.min(slit_nodes) {
                    for to in 0..n.min(slit_nodes) {
                        topo.distances[from * n + to] = matrix[from * slit_nodes + to];
                    }
                }
            }
        }
    }

    if let Some(fadt) = tables.find_table::<Fadt>() {
        if let Ok(Some(block)) = fadt.pm_timer_block() {
            if block.address_space == AddressSpace::SystemIo {
                topo.pm_timer = Some((block.address as u16, { fadt.flags }.pm_timer_is_32_bit()));
            }
        }
    }
    Ok(topo)
}

/// The bytes of a whole ACPI table through the direct map.
fn table_bytes(handler: &DirectMapHandler, phys: u64, length: u32) -> &'static [u8] {
    // SAFETY: the table lies in firmware memory covered by the direct map, its length is
    // from its own header, and firmware tables are never freed.
    unsafe {
        core::slice::from_raw_parts((handler.phys_offset + phys) as *const u8, length as usize)
    }
}

/// One SRAT affinity entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SratAffinity {
    /// A CPU (local APIC or x2APIC affinity) and its node.
    Cpu {
        /// APIC id.
        apic_id: u32,
        /// Node.
        node: u32,
    },
    /// A memory range and its node.
    Memory(MemoryAffinity),
}

/// Size of the SRAT header (SDT header plus 12 reserved bytes).
const SRAT_HEADER_BYTES: usize = 48;
/// Size of the SLIT header (SDT header plus the node count).
const SLIT_HEADER_BYTES: usize = 44;

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Parses the enabled entries of a SRAT (the `acpi` crate's pre-release SRAT and SLIT
/// readers mis-size their entries, so these two tables are read here).
pub fn parse_srat(table: &[u8]) -> Vec<SratAffinity> {
    let mut out = Vec::new();
    let mut at = SRAT_HEADER_BYTES;
    while at + 2 <= table.len() {
        let (kind, len) = (table[at], usize::from(table[at + 1]));
        if len < 2 || at + len > table.len() {
            break;
        }
        let e = &table[at..at + len];
        match kind {
            0 if len >= 16 => {
                let flags = le_u32(e, 4).unwrap_or(0);
                let node = u32::from(e[2])
                    | (u32::from(e[9]) << 8)
                    | (u32::from(e[10]) << 16)
                    | (u32::from(e[11]) << 24);
                if flags & 1 != 0 {
                    out.push(SratAffinity::Cpu {
                        apic_id: u32::from(e[3]),
                        node,
                    });
                }
            }
            1 if len >= 40 => {
                let flags = le_u32(e, 28).unwrap_or(0);
                if flags & 1 != 0 {
                    out.push(SratAffinity::Memory(MemoryAffinity {
                        node: le_u32(e, 2).unwrap_or(0),
                        base: le_u64(e, 8).unwrap_or(0),
                        length: le_u64(e, 16).unwrap_or(0),
                        hot_pluggable: flags & 2 != 0,
                    }));
                }
            }
            2 if len >= 24 => {
                let flags = le_u32(e, 12).unwrap_or(0);
                if flags & 1 != 0 {
                    out.push(SratAffinity::Cpu {
                        apic_id: le_u32(e, 8).unwrap_or(0),
                        node: le_u32(e, 4).unwrap_or(0),
                    });
                }
            }
            _ => {}
        }
        at += len;
    }
    out
}

/// Parses a SLIT: the node count and the row-major distance matrix.
pub fn parse_slit(table: &[u8]) -> Option<(usize, &[u8])> {
    let nodes = usize::try_from(le_u64(table, 36)?).ok()?;
    let matrix = table.get(SLIT_HEADER_BYTES..SLIT_HEADER_BYTES + nodes.checked_mul(nodes)?)?;
    Some((nodes, matrix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A SRAT with a header of the right size and the given entries.
    fn srat(entries: &[&[u8]]) -> Vec<u8> {
        let mut t = alloc::vec![0u8; SRAT_HEADER_BYTES];
        t[..4].copy_from_slice(b"SRAT");
        for e in entries {
            t.extend_from_slice(e);
        }
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        t
    }

    fn cpu_entry(apic: u8, node: u32, enabled: bool) -> [u8; 16] {
        let mut e = [0u8; 16];
        e[0] = 0;
        e[1] = 16;
        e[2] = node as u8;
        e[3] = apic;
        e[4..8].copy_from_slice(&u32::from(enabled).to_le_bytes());
        e[9..12].copy_from_slice(&(node >> 8).to_le_bytes()[..3]);
        e
    }

    fn memory_entry(node: u32, base: u64, length: u64, flags: u32) -> [u8; 40] {
        let mut e = [0u8; 40];
        e[0] = 1;
        e[1] = 40;
        e[2..6].copy_from_slice(&node.to_le_bytes());
        e[8..16].copy_from_slice(&base.to_le_bytes());
        e[16..24].copy_from_slice(&length.to_le_bytes());
        e[28..32].copy_from_slice(&flags.to_le_bytes());
        e
    }

    #[test]
    fn srat_cpus_and_memory() {
        let t = srat(&[
            &cpu_entry(0, 0, true),
            &cpu_entry(1, 1, true),
            &cpu_entry(2, 1, false),
            &memory_entry(0, 0, 0xa0000, 1),
            &memory_entry(1, 0x4000_0000, 0x4000_0000, 1 | 2),
            &memory_entry(1, 0x8000_0000, 0x1000, 0),
        ]);
        let got = parse_srat(&t);
        assert_eq!(
            got,
            alloc::vec![
                SratAffinity::Cpu {
                    apic_id: 0,
                    node: 0
                },
                SratAffinity::Cpu {
                    apic_id: 1,
                    node: 1
                },
                SratAffinity::Memory(MemoryAffinity {
                    node: 0,
                    base: 0,
                    length: 0xa0000,
                    hot_pluggable: false
                }),
                SratAffinity::Memory(MemoryAffinity {
                    node: 1,
                    base: 0x4000_0000,
                    length: 0x4000_0000,
                    hot_pluggable: true
                }),
            ]
        );
    }

    #[test]
    fn slit_matrix() {
        let mut t = alloc::vec![0u8; SLIT_HEADER_BYTES];
        t[36..44].copy_from_slice(&2u64.to_le_bytes());
        t.extend_from_slice(&[10, 21, 21, 10]);
        assert_eq!(parse_slit(&t), Some((2, &[10u8, 21, 21, 10][..])));
        // A node count the table is too short for, or one whose square overflows.
        t[36..44].copy_from_slice(&3u64.to_le_bytes());
        assert_eq!(parse_slit(&t), None);
        t[36..44].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_slit(&t), None);
    }

    #[test]
    fn truncated_and_garbage_tables_never_panic() {
        let t = srat(&[&cpu_entry(0, 0, true), &memory_entry(0, 0, 0x1000, 1)]);
        for cut in 0..t.len() {
            let _ = parse_srat(&t[..cut]);
            let _ = parse_slit(&t[..cut]);
        }
        let mut seed = 0x1234_5678_u64;
        for _ in 0..2000 {
            let mut garbage = t.clone();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (seed >> 33) as usize % garbage.len();
                garbage[i] = (seed >> 17) as u8;
            }
            let _ = parse_srat(&garbage);
            let _ = parse_slit(&garbage);
        }
    }
}
