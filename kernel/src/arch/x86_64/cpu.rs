//! CPU feature discovery and control-register setup done on every CPU.

use core::arch::x86_64::{__cpuid, __cpuid_count};
use x86_64::registers::{
    control::{Cr0, Cr0Flags, Cr4, Cr4Flags},
    model_specific::{Efer, EferFlags},
};

/// CPU features the kernel cares about (all of them appear in the boot log).
#[derive(Clone, Copy, Debug, Default)]
#[allow(dead_code)]
pub struct Features {
    /// 1 GiB pages.
    pub huge_1g: bool,
    /// x2APIC mode.
    pub x2apic: bool,
    /// Supervisor-mode execution prevention.
    pub smep: bool,
    /// Supervisor-mode access prevention.
    pub smap: bool,
    /// Protection keys for user pages.
    pub pku: bool,
    /// Process-context identifiers.
    pub pcid: bool,
    /// RDRAND instruction.
    pub rdrand: bool,
    /// Invariant TSC.
    pub invariant_tsc: bool,
    /// The CPU is affected by Meltdown (rogue data cache load): an Intel CPU that does not
    /// report RDCL_NO in IA32_ARCH_CAPABILITIES. KPTI's `auto` setting follows this.
    pub meltdown: bool,
}

/// Reads CPUID.
pub fn features() -> Features {
    let leaf1 = __cpuid(1);
    let leaf7 = __cpuid_count(7, 0);
    let ext1 = __cpuid(0x8000_0001);
    let max_ext = __cpuid(0x8000_0000).eax;
    let invariant_tsc = max_ext >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0;
    let vendor = __cpuid(0);
    let intel = (vendor.ebx, vendor.edx, vendor.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e); // "GenuineIntel"
    let rdcl_no = leaf7.edx & (1 << 29) != 0 && {
        // SAFETY: CPUID.7:EDX[29] says IA32_ARCH_CAPABILITIES exists; reading it has no effect.
        let caps = unsafe { x86_64::registers::model_specific::Msr::new(0x10a).read() };
        caps & 1 != 0
    };
    Features {
        huge_1g: ext1.edx & (1 << 26) != 0,
        x2apic: leaf1.ecx & (1 << 21) != 0,
        smep: leaf7.ebx & (1 << 7) != 0,
        smap: leaf7.ebx & (1 << 20) != 0,
        pku: leaf7.ecx & (1 << 3) != 0,
        pcid: leaf1.ecx & (1 << 17) != 0,
        rdrand: leaf1.ecx & (1 << 30) != 0,
        invariant_tsc,
        meltdown: intel && !rdcl_no,
    }
}

/// Turns on what every CPU needs: SSE for user code, NX, write protection in ring 0,
/// global pages, and SMEP where the CPU has it.
pub fn init_control_registers(features: &Features) {
    // SAFETY: these bits only enable protections and instruction-set features the CPU
    // reports; the kernel itself is built without SSE and never executes user pages.
    unsafe {
        Cr0::update(|cr0| {
            cr0.remove(Cr0Flags::EMULATE_COPROCESSOR);
            cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::WRITE_PROTECT | Cr0Flags::NUMERIC_ERROR);
        });
        Cr4::update(|cr4| {
            cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
            // Global kernel mappings would survive the switch to user tables: under KPTI
            // they are off.
            if super::kpti::enabled() {
                cr4.remove(Cr4Flags::PAGE_GLOBAL);
            } else {
                cr4.insert(Cr4Flags::PAGE_GLOBAL);
            }
            if features.smep {
                cr4.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
            }
            if features.smap {
                cr4.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            }
        });
        Efer::update(|efer| efer.insert(EferFlags::NO_EXECUTE_ENABLE));
    }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is allowed in ring 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Halts the CPU forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// The boot CPU's initial APIC id (CPUID leaf 0xB where present, else leaf 1).
pub fn boot_apic_id() -> u32 {
    if __cpuid(0).eax >= 0xb {
        let leaf = __cpuid_count(0xb, 0);
        if leaf.ebx != 0 {
            return leaf.edx;
        }
    }
    __cpuid(1).ebx >> 24
}
