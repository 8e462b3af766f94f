//! Device drivers for the Peios kernel: the 16550 console, QEMU's isa-debug-exit, the ACPI
//! tables that describe CPUs, NUMA nodes and timers, the ACPI PM timer, the 8254 PIT and
//! the local/IO APICs, PCI configuration space and a virtio block device.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

pub mod acpi;
pub mod apic;
pub mod debug_exit;
pub mod pci;
pub mod pit;
pub mod pm_timer;
pub mod serial;
pub mod virtio_blk;
