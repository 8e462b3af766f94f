//! Ending the machine when the first process exits: its status goes to the console as
//! `EXIT=<n>` (128 + signal for a signal death) and QEMU exits through isa-debug-exit.

use crate::{kprintln, proc::ExitStatus};
use drivers::debug_exit::{exit_qemu, ExitCode};

/// Init (pid 1) has exited.
pub fn init_exited(status: ExitStatus) {
    kprintln!("init exited: {:?}", status);
    kprintln!("EXIT={}", status.shell_status());
    exit_qemu(ExitCode::Success);
}
