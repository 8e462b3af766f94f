//! The 8254 programmable interval timer, used once at boot to prove IO-APIC routing of a
//! legacy interrupt line (IRQ 0).

use x86_64::instructions::port::Port;

/// Input frequency of the PIT.
pub const PIT_HZ: u32 = 1_193_182;

/// Programs channel 0 in one-shot mode (mode 0) to raise IRQ 0 after `ticks`.
pub fn one_shot(ticks: u16) {
    let mut command = Port::<u8>::new(0x43);
    let mut channel0 = Port::<u8>::new(0x40);
    // SAFETY: the PIT command and channel-0 ports are owned by the kernel; this only
    // reprograms the timer.
    unsafe {
        command.write(0x30); // channel 0, lobyte/hibyte, mode 0
        channel0.write(ticks as u8);
        channel0.write((ticks >> 8) as u8);
    }
}

/// Vector base the legacy PICs are moved to, so a spurious PIC interrupt never lands on
/// an exception vector.
pub const PIC_VECTOR_BASE: u8 = 0x20;

/// Remaps both legacy 8259 PICs to `PIC_VECTOR_BASE..+16` and masks every line, so only
/// the IO-APIC delivers interrupts.
pub fn disable_legacy_pic() {
    let (mut cmd1, mut data1) = (Port::<u8>::new(0x20), Port::<u8>::new(0x21));
    let (mut cmd2, mut data2) = (Port::<u8>::new(0xa0), Port::<u8>::new(0xa1));
    // SAFETY: the standard ICW1-ICW4 initialisation of the two PICs, then a full mask; it
    // only changes which vectors the (masked) PICs would use.
    unsafe {
        cmd1.write(0x11);
        cmd2.write(0x11);
        data1.write(PIC_VECTOR_BASE);
        data2.write(PIC_VECTOR_BASE + 8);
        data1.write(4);
        data2.write(2);
        data1.write(1);
        data2.write(1);
        data1.write(0xff);
        data2.write(0xff);
    }
}
