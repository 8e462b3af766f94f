//! The ACPI tables the kernel needs at boot, read through the `acpi` crate: MADT (CPUs,
//! IO-APICs, interrupt overrides), SRAT (CPU and memory affinity), SLIT (node distances)
//! and the FADT's PM timer. The result is a plain [`Topology`].

mod handler;
mod topology;

pub use handler::DirectMapHandler;
pub use topology::{
    parse_slit, parse_srat, parse_topology, CpuEntry, InterruptOverride, IoApicEntry,
    MemoryAffinity, SratAffinity, Topology, TopologyError,
};
