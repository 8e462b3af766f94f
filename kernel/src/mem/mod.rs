//! Physical memory at boot: usable ranges from the memory map, a bump allocator for the
//! page tables and the heap, the kernel heap itself, and per-node accounting from SRAT.

pub mod bootstrap;
pub mod heap;
pub mod numa;
