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
    /// RDTSCP (and with it IA32_TSC_AUX).
    pub rdtscp: bool,
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
        rdtscp: ext1.edx & (1 << 27) != 0,
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
            cr0.insert(
                Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::WRITE_PROTECT | Cr0Flags::NUMERIC_ERROR,
            );
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
            // Protection keys for user pages: PKRU then applies to every access to a
            // user page, and user mode may change it with WRPKRU.
            if features.pku {
                cr4.insert(Cr4Flags::PROTECTION_KEY_USER);
            }
        });
        Efer::update(|efer| efer.insert(EferFlags::NO_EXECUTE_ENABLE));
    }
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

/// Zeroes one 4 KiB page with an unrolled loop of 256-byte groups of 8-byte stores.
/// Under QEMU TCG a `rep stos` leaves its translation block at every iteration (512 per
/// page); this loop stays in one block (16 chained iterations), several times faster.
/// (Linux's `clear_page_orig` is the same idea for CPUs without fast string operations.)
///
/// # Safety
/// `page` must be 4 KiB-aligned, writable, and not in use by anyone else.
pub unsafe fn clear_page(page: *mut u8) {
    // SAFETY: the caller hands over a whole writable page; the loop writes exactly 4096
    // bytes from `page` and clobbers only the declared registers.
    unsafe {
        core::arch::asm!(
            "2:",
            "mov qword ptr [{p} + 0], {z}",
            "mov qword ptr [{p} + 8], {z}",
            "mov qword ptr [{p} + 16], {z}",
            "mov qword ptr [{p} + 24], {z}",
            "mov qword ptr [{p} + 32], {z}",
            "mov qword ptr [{p} + 40], {z}",
            "mov qword ptr [{p} + 48], {z}",
            "mov qword ptr [{p} + 56], {z}",
            "mov qword ptr [{p} + 64], {z}",
            "mov qword ptr [{p} + 72], {z}",
            "mov qword ptr [{p} + 80], {z}",
            "mov qword ptr [{p} + 88], {z}",
            "mov qword ptr [{p} + 96], {z}",
            "mov qword ptr [{p} + 104], {z}",
            "mov qword ptr [{p} + 112], {z}",
            "mov qword ptr [{p} + 120], {z}",
            "mov qword ptr [{p} + 128], {z}",
            "mov qword ptr [{p} + 136], {z}",
            "mov qword ptr [{p} + 144], {z}",
            "mov qword ptr [{p} + 152], {z}",
            "mov qword ptr [{p} + 160], {z}",
            "mov qword ptr [{p} + 168], {z}",
            "mov qword ptr [{p} + 176], {z}",
            "mov qword ptr [{p} + 184], {z}",
            "mov qword ptr [{p} + 192], {z}",
            "mov qword ptr [{p} + 200], {z}",
            "mov qword ptr [{p} + 208], {z}",
            "mov qword ptr [{p} + 216], {z}",
            "mov qword ptr [{p} + 224], {z}",
            "mov qword ptr [{p} + 232], {z}",
            "mov qword ptr [{p} + 240], {z}",
            "mov qword ptr [{p} + 248], {z}",
            "add {p}, 256",
            "dec {n:e}",
            "jnz 2b",
            p = inout(reg) page => _,
            n = inout(reg) 16u32 => _,
            z = in(reg) 0u64,
            options(nostack)
        )
    };
}

/// How long a relaxing spin-wait halts before it looks again.
const RELAX_NS: u64 = 20_000;

/// What a spin-wait that has gone on for a while does instead of spinning (installed as
/// `mm::cpu`'s relax hook): with interrupts on, halt until the next interrupt, with the
/// timer armed [`RELAX_NS`] ahead so the wait looks again soon. Under a hypervisor with
/// more vCPUs than cores, a halted vCPU's thread sleeps and the vCPU being waited for
/// (a lock holder, a CPU owing a TLB acknowledgement) gets the core; spinning (PAUSE is
/// no yield under TCG) would burn it. With interrupts off it only spins.
pub fn relax() {
    if !x86_64::instructions::interrupts::are_enabled() {
        core::hint::spin_loop();
        return;
    }
    x86_64::instructions::interrupts::disable();
    super::apic::arm_timer_by(crate::time::now_ns().saturating_add(RELAX_NS));
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Most frames [`backtrace`] walks.
const BACKTRACE_FRAMES: usize = 24;
/// Largest step between two saved frame pointers [`backtrace`] believes.
const BACKTRACE_MAX_FRAME: u64 = 1 << 20;

/// Calls `f` with the return address of each caller on the current stack, innermost
/// first, as link-time addresses (the KASLR delta taken off, so `addr2line -e kernel`
/// names them). Walks the frame-pointer chain (the kernel is built with frame
/// pointers) and stops at the first pointer that is not a plausible frame: zero,
/// misaligned, below the previous one or more than a MiB above it.
pub fn backtrace(mut f: impl FnMut(u64)) {
    let mut rbp: u64;
    // SAFETY: reads the frame-pointer register; no memory is touched.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    let delta = super::kaslr::delta();
    for _ in 0..BACKTRACE_FRAMES {
        if rbp == 0 || rbp % 8 != 0 || rbp < 0xffff_8000_0000_0000 {
            break;
        }
        // SAFETY: `rbp` is a saved frame pointer of this stack (checked plausible above
        // and below), so `[rbp]` holds the caller's and `[rbp + 8]` the return address.
        let (next, ret) = unsafe {
            (
                (rbp as *const u64).read_volatile(),
                ((rbp + 8) as *const u64).read_volatile(),
            )
        };
        if ret == 0 {
            break;
        }
        f(ret.wrapping_sub(delta));
        if next <= rbp || next - rbp > BACKTRACE_MAX_FRAME {
            break;
        }
        rbp = next;
    }
}
