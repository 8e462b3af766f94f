//! `hungtask`: the hung-thread report. Sets `kernel.hung_task_timeout_secs` to 2, parks
//! a thread on a userfaultfd page nobody answers, and waits long enough for the kernel
//! to report it (the guest test reads the report on the console); then puts the
//! timeout back and ends the process, which ends the parked thread with it. Also
//! checks that the key refuses values outside its range.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_bins::files::{read_file, write_file};
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::sys::fs::O_CLOEXEC;
use peios_rt::sys::mm::{mmap_anon, Prot};
use peios_rt::sys::uffd;
use peios_rt::thread::spawn;
use peios_rt::time::sleep_ms;

peios_rt::main!(main);

const KEY: &str = "/proc/sys/kernel/hung_task_timeout_secs";
const PAGE: usize = 4096;

fn main(_args: &Args) -> i32 {
    let mut checks = Checks::new("hungtask");
    let default = read_file(KEY);
    checks.check(
        "default-120",
        matches!(&default, Ok(t) if t.trim() == "120"),
        format_args!("{:?}", default),
    );
    checks.expect_errno("out-of-range", write_file(KEY, "86401"), Errno::EINVAL);
    let set = write_file(KEY, "2").and_then(|_| read_file(KEY));
    checks.check(
        "set-2",
        matches!(&set, Ok(t) if t.trim() == "2"),
        format_args!("{:?}", set),
    );
    let parked = (|| {
        let fd = uffd::userfaultfd(O_CLOEXEC)?;
        uffd::api(fd, uffd::UFFD_API, 0)?;
        let page = mmap_anon(PAGE, Prot::RW)? as usize;
        uffd::register(fd, page, PAGE, uffd::MODE_MISSING)?;
        // The read parks the thread for good: nobody reads the descriptor.
        // SAFETY: `page` is our live anonymous mapping.
        spawn(move || unsafe { core::ptr::read_volatile(page as *const u8) })?;
        Ok::<(), Errno>(())
    })();
    checks.check("parked", parked.is_ok(), format_args!("{:?}", parked));
    // Checked every second at a 2 s timeout: reported well within 6 s.
    sleep_ms(6000);
    println!("hungtask: waited 6 s");
    checks.check(
        "restored",
        write_file(KEY, "120").is_ok(),
        format_args!("back to 120"),
    );
    checks.finish()
}
