//! The vDSO's data page ([vvar]): what the kernel publishes and the vDSO reads. This
//! file is compiled into both, so the layout cannot drift between them.

/// `VdsoData::magic`: the page is filled in.
pub const VDSO_MAGIC: u64 = 0x7065_696f_735f_7664; // "peios_vd"

/// `VdsoData::flags`: RDTSCP works and IA32_TSC_AUX holds `node << 12 | cpu`.
pub const VDSO_HAS_RDTSCP: u64 = 1;

/// The clock and CPU facts of the [vvar] page, at its start.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct VdsoData {
    /// [`VDSO_MAGIC`] once the kernel filled the page.
    pub magic: u64,
    /// `VDSO_HAS_*` bits.
    pub flags: u64,
    /// TSC value at time zero of CLOCK_MONOTONIC.
    pub tsc_at_boot: u64,
    /// Nanoseconds per tick times `2^ns_shift`.
    pub tsc_ns_mult: u64,
    /// The fixed-point shift of `tsc_ns_mult`.
    pub ns_shift: u64,
    /// CLOCK_REALTIME at CLOCK_MONOTONIC zero, in nanoseconds since the epoch.
    pub realtime_at_boot_ns: u64,
}
