//! `hello`: prints its arguments, selected environment variables and a few auxv
//! entries, then exits with the status given as argv[1] (0 when absent), so a
//! harness can check that arguments arrive and exit statuses come back.
//!
//! Needs only write and exit_group (plus the runtime's start-up calls
//! set_tid_address and arch_prctl, whose failure it tolerates); getpid and uname
//! are printed when they work. It does not allocate.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use peios_rt::prelude::*;
use peios_rt::start::auxv;
use peios_rt::sys;

peios_rt::main!(main);

fn main(args: &Args) -> i32 {
    println!("hello: argc={}", args.len());
    for (i, a) in args.iter().enumerate() {
        println!("hello: argv[{}]={}", i, a);
    }
    println!("hello: envc={}", args.env_iter().count());
    for name in ["PATH", "HOME", "TERM", "PEIOS_TEST"] {
        if let Some(v) = args.env(name) {
            println!("hello: env {}={}", name, v);
        }
    }
    println!(
        "hello: auxv AT_PAGESZ={} AT_HWCAP={:#x} AT_RANDOM={} AT_ENTRY={:#x} AT_PHNUM={}",
        args.page_size(),
        args.auxv(auxv::AT_HWCAP).unwrap_or(0),
        if args.at_random().is_some() {
            "present"
        } else {
            "absent"
        },
        args.auxv(auxv::AT_ENTRY).unwrap_or(0),
        args.auxv(auxv::AT_PHNUM).unwrap_or(0),
    );
    if let Ok(u) = sys::misc::uname() {
        println!(
            "hello: uname {} {} {}",
            sys::misc::field_str(&u.sysname),
            sys::misc::field_str(&u.release),
            sys::misc::field_str(&u.machine)
        );
    }
    println!("hello from peios-rt (pid {})", sys::process::getpid());
    match args.get(1) {
        None => 0,
        Some(s) => match s.parse::<i32>() {
            Ok(status) => status,
            Err(_) => {
                eprintln!("hello: argv[1] {:?} is not an exit status; exiting 0", s);
                0
            }
        },
    }
}
