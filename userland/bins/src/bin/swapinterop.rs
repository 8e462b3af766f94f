//! `swapinterop`: a swap area crosses between Peios and Linux 6.12 (issue 16).
//!
//! `--dev PATH` (either kernel): swapon of PATH (a swap file or a disk), a pageout of
//! 1 MiB that `/proc/swaps` shows in Used and that reads back word for word, swapoff.
//!
//! `--linux IMAGE MODULE` (Linux through the anchor, whose disks are read-only): loads
//! the loop driver from MODULE (`loop.ko.xz`), copies the swap file IMAGE (written by
//! Peios) to /dev/shm, puts a loop device over the copy and runs the `--dev` steps on
//! it; then prints the copy's header page, as Linux left it, as `header OFFSET HEX`
//! lines, so the host can give it back to Peios.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::CStr;
use peios_bins::files::{open, read_file};
use peios_bins::pattern::Region;
use peios_bins::Checks;
use peios_rt::prelude::*;
use peios_rt::sys::fs::{close, read, write_all, O_RDONLY, O_RDWR};
use peios_rt::sys::swap::{swapoff, swapon};
use peios_rt::syscall::{syscall3, syscall4};

peios_rt::main!(main);

const SYS_IOCTL: usize = 16;
const SYS_FINIT_MODULE: usize = 313;
/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module.
const MODULE_INIT_COMPRESSED_FILE: usize = 4;
const LOOP_SET_FD: usize = 0x4C00;
const LOOP_CTL_GET_FREE: usize = 0x4C82;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
/// Bytes of the header page shown per line.
const DUMP_CHUNK: usize = 64;

fn c_path(path: &str) -> Vec<u8> {
    let mut v = Vec::from(path.as_bytes());
    v.push(0);
    v
}

fn as_cstr(bytes: &[u8]) -> &CStr {
    CStr::from_bytes_with_nul(bytes).expect("one NUL at the end")
}

/// Used kB of `name` in `/proc/swaps`, if it is listed.
fn swaps_used_kb(name: &str) -> Option<u64> {
    let text = read_file("/proc/swaps").ok()?;
    text.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == name).then_some(())?;
        f.nth(2)?.parse().ok()
    })
}

/// swapon, a pageout that reads back, swapoff: the steps both kernels take.
fn use_area(c: &mut Checks, who: &str, path: &str) {
    let p = c_path(path);
    let on = swapon(as_cstr(&p), 0);
    let listed = swaps_used_kb(path);
    c.check(
        &format!("{who}_swapon"),
        on.is_ok() && listed.is_some(),
        format_args!(
            "swapon {path}: {on:?}; /proc/swaps:\n{}",
            read_file("/proc/swaps").unwrap_or_default().trim_end()
        ),
    );
    if on.is_err() {
        return;
    }
    match Region::new(256) {
        Ok(r) => {
            let before = listed.unwrap_or(0);
            r.fill(41, 0, 1);
            let advised = r.page_out();
            let mut used = before;
            for _ in 0..1000 {
                used = swaps_used_kb(path).unwrap_or(0);
                if used >= before + 1024 {
                    break;
                }
                peios_rt::time::sleep_ms(10);
            }
            let bad = r.mismatches(41, 0, 1);
            c.check(
                &format!("{who}_pageout_reads_back"),
                advised.is_ok() && used >= before + 1024 && bad == 0,
                format_args!("madvise {advised:?}: Used {before} -> {used} kB, {bad} pages differ"),
            );
            r.unmap();
        }
        Err(e) => {
            c.check(
                &format!("{who}_pageout_reads_back"),
                false,
                format_args!("map: {e}"),
            );
        }
    }
    let off = swapoff(as_cstr(&p));
    c.check(
        &format!("{who}_swapoff"),
        off.is_ok() && swaps_used_kb(path).is_none(),
        format_args!("{off:?}"),
    );
}

/// Copies `from` to `to` (created), returning the bytes copied.
fn copy_file(from: &str, to: &str) -> Result<usize, Errno> {
    let src = open(from, O_RDONLY)?;
    let dst = open(to, O_RDWR | O_CREAT | O_TRUNC);
    let dst = match dst {
        Ok(fd) => fd,
        Err(e) => {
            let _ = close(src);
            return Err(e);
        }
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    let result = loop {
        match read(src, &mut buf) {
            Ok(0) => break Ok(total),
            Ok(n) => {
                if let Err(e) = write_all(dst, &buf[..n]) {
                    break Err(e);
                }
                total += n;
            }
            Err(e) => break Err(e),
        }
    };
    let _ = close(src);
    let _ = close(dst);
    result
}

/// Loads the loop driver and puts a loop device over `file`: its path.
fn loop_device(module: &str, file: &str) -> Result<String, String> {
    let m = open(module, O_RDONLY).map_err(|e| format!("open {module}: {e}"))?;
    // SAFETY: finit_module reads the module from `m`; the empty string is NUL-terminated.
    let r = unsafe {
        syscall3(
            SYS_FINIT_MODULE,
            m as usize,
            c"".as_ptr() as usize,
            MODULE_INIT_COMPRESSED_FILE,
        )
    };
    let _ = close(m);
    match Errno::result(r) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(format!("finit_module {module}: {e}")),
    }
    let ctl = open("/dev/loop-control", O_RDWR).map_err(|e| format!("loop-control: {e}"))?;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument.
    let n = Errno::result(unsafe { syscall3(SYS_IOCTL, ctl as usize, LOOP_CTL_GET_FREE, 0) });
    let _ = close(ctl);
    let n = n.map_err(|e| format!("LOOP_CTL_GET_FREE: {e}"))?;
    let dev = format!("/dev/loop{n}");
    // devtmpfs makes the node a little after the device exists.
    let mut fd = Err(Errno::ENOENT);
    for _ in 0..200 {
        fd = open(&dev, O_RDWR);
        if fd.is_ok() {
            break;
        }
        peios_rt::time::sleep_ms(10);
    }
    let fd = fd.map_err(|e| format!("open {dev}: {e}"))?;
    let backing = open(file, O_RDWR).map_err(|e| format!("open {file}: {e}"))?;
    // SAFETY: LOOP_SET_FD takes the backing file's descriptor as its argument.
    let r = unsafe { syscall4(SYS_IOCTL, fd as usize, LOOP_SET_FD, backing as usize, 0) };
    let _ = close(backing);
    // The device keeps its backing file; this descriptor can go.
    let _ = close(fd);
    Errno::result(r).map_err(|e| format!("LOOP_SET_FD: {e}"))?;
    Ok(dev)
}

/// Prints the first page of `file` as `header OFFSET HEX` lines (zero chunks left out).
fn dump_header(c: &mut Checks, file: &str) {
    let mut page = [0u8; 4096];
    let got = open(file, O_RDONLY).and_then(|fd| {
        let r = read(fd, &mut page);
        let _ = close(fd);
        r
    });
    c.check(
        "linux_header_read",
        got == Ok(4096),
        format_args!("{got:?}"),
    );
    for (i, chunk) in page.chunks(DUMP_CHUNK).enumerate() {
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
        println!("swapinterop: header {} {}", i * DUMP_CHUNK, hex);
    }
}

fn main(args: &peios_rt::Args) -> i32 {
    let mut c = Checks::new("swapinterop");
    if let Some(path) = args.opt("--dev") {
        use_area(&mut c, "peios", path);
        return c.finish();
    }
    let argv: Vec<&str> = args.iter().collect();
    let Some(at) = argv.iter().position(|a| *a == "--linux") else {
        println!("usage: swapinterop --dev PATH | --linux IMAGE MODULE");
        return 2;
    };
    let (Some(image), Some(module)) = (argv.get(at + 1), argv.get(at + 2)) else {
        println!("usage: swapinterop --linux IMAGE MODULE");
        return 2;
    };
    let copy = "/dev/shm/peios-swap.img";
    let copied = copy_file(image, copy);
    c.check("linux_copied", copied.is_ok(), format_args!("{copied:?}"));
    if copied.is_err() {
        return c.finish();
    }
    match loop_device(module, copy) {
        Ok(dev) => {
            use_area(&mut c, "linux", &dev);
            dump_header(&mut c, copy);
        }
        Err(e) => {
            c.check("linux_swapon", false, format_args!("{e}"));
        }
    }
    c.finish()
}
