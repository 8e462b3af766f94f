//! Local APIC (x2APIC where the CPU has it, xAPIC MMIO otherwise, through the `x2apic`
//! crate) and IO-APIC routing of legacy interrupt lines.

use x2apic::{
    ioapic::{IoApic, IrqFlags, IrqMode, RedirectionTableEntry},
    lapic::{LocalApic, LocalApicBuilder, TimerDivide, TimerMode},
};

/// Interrupt vectors the kernel assigns.
pub mod vectors {
    /// First vector used for IO-APIC lines (GSI n arrives on `IOAPIC_BASE + n`).
    pub const IOAPIC_BASE: u8 = 0x30;
    /// The local APIC timer.
    pub const TIMER: u8 = 0xf0;
    /// "Wake up, there is work in your queue" IPI.
    pub const WAKE: u8 = 0xf1;
    /// Another CPU panicked: stop.
    pub const HALT: u8 = 0xf2;
    /// TLB shootdown request.
    pub const TLB_SHOOTDOWN: u8 = 0xf3;
    /// APIC error.
    pub const ERROR: u8 = 0xfe;
    /// Spurious interrupt.
    pub const SPURIOUS: u8 = 0xff;
}

/// Builds and enables this CPU's local APIC with its timer stopped, in one-shot mode.
///
/// # Safety
/// Call once per CPU with interrupts disabled; `xapic_virt` must map the xAPIC MMIO page
/// (uncached) when the CPU lacks x2APIC.
pub unsafe fn enable_local_apic(xapic_virt: u64) -> LocalApic {
    let mut apic = LocalApicBuilder::new()
        .timer_vector(usize::from(vectors::TIMER))
        .error_vector(usize::from(vectors::ERROR))
        .spurious_vector(usize::from(vectors::SPURIOUS))
        .timer_mode(TimerMode::OneShot)
        .timer_divide(TimerDivide::Div16)
        .timer_initial(0)
        .set_xapic_base(xapic_virt)
        .build()
        .unwrap_or_else(|e| panic!("local APIC: {e}"));
    // SAFETY: the caller runs this once per CPU with interrupts off.
    unsafe {
        apic.enable();
        apic.disable_timer();
        let bsp = apic.is_bsp();
        set_local_interrupt_pins(xapic_virt, bsp);
    }
    apic
}

/// LVT LINT0 and LINT1: xAPIC register offsets and x2APIC MSRs.
const XAPIC_LVT_LINT0: u64 = 0x350;
const XAPIC_LVT_LINT1: u64 = 0x360;
const X2APIC_MSR_LVT_LINT0: u32 = 0x835;
const X2APIC_MSR_LVT_LINT1: u32 = 0x836;
/// LVT bits: masked, and the NMI delivery mode.
const LVT_MASKED: u32 = 1 << 16;
const LVT_DELIVERY_NMI: u32 = 0b100 << 8;

/// Masks LINT0 (the legacy 8259's INTR: its lines come through the IO-APIC) and makes
/// LINT1 the NMI pin on the boot CPU only, as Linux does. The `x2apic` crate's
/// `enable` writes 0 to both, which leaves them unmasked as fixed vector 0: an 8259
/// output then stays pending as an illegal vector in the IRR.
///
/// # Safety
/// As for [`enable_local_apic`], after the APIC is enabled (x2APIC mode switched on
/// where the CPU has it).
unsafe fn set_local_interrupt_pins(xapic_virt: u64, bsp: bool) {
    let lint1 = if bsp { LVT_DELIVERY_NMI } else { LVT_MASKED };
    if cpu_has_x2apic() {
        // SAFETY: x2APIC mode is on; these MSRs are the LVT LINT registers.
        unsafe {
            x86_64::registers::model_specific::Msr::new(X2APIC_MSR_LVT_LINT0)
                .write(u64::from(LVT_MASKED));
            x86_64::registers::model_specific::Msr::new(X2APIC_MSR_LVT_LINT1)
                .write(u64::from(lint1));
        }
    } else {
        // SAFETY: the caller maps the xAPIC page at `xapic_virt` (uncached); LVT
        // registers are 32-bit, 16-byte aligned.
        unsafe {
            core::ptr::write_volatile((xapic_virt + XAPIC_LVT_LINT0) as *mut u32, LVT_MASKED);
            core::ptr::write_volatile((xapic_virt + XAPIC_LVT_LINT1) as *mut u32, lint1);
        }
    }
}

/// This CPU's LVT LINT0 and LINT1 registers as read back.
///
/// # Safety
/// As for [`enable_local_apic`] (the APIC enabled, `xapic_virt` mapping its page when
/// the CPU lacks x2APIC).
pub unsafe fn local_interrupt_pins(xapic_virt: u64) -> (u32, u32) {
    if cpu_has_x2apic() {
        // SAFETY: x2APIC mode is on; reading LVT MSRs has no side effects.
        unsafe {
            (
                x86_64::registers::model_specific::Msr::new(X2APIC_MSR_LVT_LINT0).read() as u32,
                x86_64::registers::model_specific::Msr::new(X2APIC_MSR_LVT_LINT1).read() as u32,
            )
        }
    } else {
        // SAFETY: the caller maps the xAPIC page; LVT reads have no side effects.
        unsafe {
            (
                core::ptr::read_volatile((xapic_virt + XAPIC_LVT_LINT0) as *const u32),
                core::ptr::read_volatile((xapic_virt + XAPIC_LVT_LINT1) as *const u32),
            )
        }
    }
}

/// What an LVT LINT register does with its pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinState {
    /// Masked: the pin is ignored.
    Masked,
    /// Delivered as an NMI.
    Nmi,
    /// Anything else (the raw register).
    Open(u32),
}

impl PinState {
    /// Decodes an LVT LINT register.
    pub fn from_lvt(lvt: u32) -> Self {
        if lvt & LVT_MASKED != 0 {
            Self::Masked
        } else if lvt & (0b111 << 8) == LVT_DELIVERY_NMI {
            Self::Nmi
        } else {
            Self::Open(lvt)
        }
    }
}

impl core::fmt::Display for PinState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Masked => f.write_str("masked"),
            Self::Nmi => f.write_str("nmi"),
            Self::Open(raw) => write!(f, "open {raw:#x}"),
        }
    }
}

/// Whether this CPU offers x2APIC mode (CPUID.1:ECX bit 21).
pub fn cpu_has_x2apic() -> bool {
    let leaf = core::arch::x86_64::__cpuid(1);
    leaf.ecx & (1 << 21) != 0
}

/// Routes ISA `irq` (after MADT overrides: `gsi`, `flags`) to `vector` on the CPU with
/// `dest_apic_id`, initially masked.
///
/// # Safety
/// `ioapic_virt` must map the IO-APIC that serves `gsi - gsi_base`.
pub unsafe fn route_legacy_irq(
    ioapic_virt: u64,
    gsi_base: u32,
    gsi: u32,
    mps_flags: u16,
    vector: u8,
    dest_apic_id: u8,
) {
    // SAFETY: the caller provides a mapped IO-APIC.
    let mut ioapic = unsafe { IoApic::new(ioapic_virt) };
    let mut entry = RedirectionTableEntry::default();
    entry.set_mode(IrqMode::Fixed);
    let mut flags = IrqFlags::MASKED;
    if mps_flags & 0b11 == 0b11 {
        flags |= IrqFlags::LOW_ACTIVE;
    }
    if (mps_flags >> 2) & 0b11 == 0b11 {
        flags |= IrqFlags::LEVEL_TRIGGERED;
    }
    entry.set_flags(flags);
    entry.set_dest(dest_apic_id);
    entry.set_vector(vector);
    // SAFETY: writes one redirection entry of a mapped IO-APIC.
    unsafe { ioapic.set_table_entry((gsi - gsi_base) as u8, entry) };
}

/// Masks or unmasks IO-APIC line `gsi`.
///
/// # Safety
/// As for [`route_legacy_irq`].
pub unsafe fn set_irq_masked(ioapic_virt: u64, gsi_base: u32, gsi: u32, masked: bool) {
    // SAFETY: the caller provides a mapped IO-APIC.
    let mut ioapic = unsafe { IoApic::new(ioapic_virt) };
    let line = (gsi - gsi_base) as u8;
    // SAFETY: toggles the mask bit of one redirection entry.
    unsafe {
        if masked {
            ioapic.disable_irq(line)
        } else {
            ioapic.enable_irq(line)
        }
    }
}

/// Number of redirection entries of the IO-APIC at `ioapic_virt`.
///
/// # Safety
/// `ioapic_virt` must map an IO-APIC.
pub unsafe fn ioapic_lines(ioapic_virt: u64) -> u8 {
    // SAFETY: the caller provides a mapped IO-APIC.
    let mut ioapic = unsafe { IoApic::new(ioapic_virt) };
    // SAFETY: reading the version register has no side effects.
    unsafe { ioapic.max_table_entry() + 1 }
}
