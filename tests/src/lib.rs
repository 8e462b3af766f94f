//! Helpers for booting the guest in QEMU from host tests.
