//! Links the kernel with its own linker script, generates the 256 interrupt entry stubs
//! and builds the vDSO (`vdso/`) into `$OUT_DIR/vdso.so` for the kernel to embed.
use std::{
    env,
    fmt::Write,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// Exceptions for which the CPU pushes an error code.
const HAS_ERROR_CODE: [u8; 9] = [8, 10, 11, 12, 13, 14, 17, 21, 29];

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!(
        "cargo:rustc-link-arg-bins=-T{}",
        dir.join("linker.ld").display()
    );
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    // Keep relocations in the output: tools/kaslr-relocs.py turns them into the table the
    // boot code uses to move the image (KASLR).
    println!("cargo:rustc-link-arg-bins=--emit-relocs");
    println!("cargo:rerun-if-changed=linker.ld");

    let mut asm = String::from(".section .text.vectors, \"ax\"\n.code64\n");
    for vector in 0..=255u8 {
        writeln!(asm, ".balign 16\nisr_vector_{vector}:").unwrap();
        if !HAS_ERROR_CODE.contains(&vector) {
            asm.push_str("    pushq $0\n");
        }
        writeln!(asm, "    pushq ${vector}\n    jmp isr_common").unwrap();
    }
    asm.push_str(
        ".section .rodata.vectors, \"a\"\n.balign 8\n.global ISR_VECTOR_TABLE\nISR_VECTOR_TABLE:\n",
    );
    for vector in 0..=255u8 {
        writeln!(asm, "    .quad isr_vector_{vector}").unwrap();
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::write(out.join("vectors.S"), asm).unwrap();
    build_vdso(&dir.join("vdso"), &out);
}

/// Runs `cmd`, failing the build with its output when it fails.
fn run(cmd: &mut Command) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Compiles `vdso.rs` into a position-independent object with the same rustc (no
/// core calls, no panics) and links it with the toolchain's rust-lld as a shared
/// object laid out by `vdso.lds` and versioned by `vdso.ver`.
fn build_vdso(src: &Path, out: &Path) {
    for file in ["vdso.rs", "data.rs", "vdso.lds", "vdso.ver"] {
        println!("cargo:rerun-if-changed={}", src.join(file).display());
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let obj = out.join("vdso.o");
    run(Command::new(&rustc)
        .args([
            "--edition=2021",
            "--crate-type=lib",
            "--crate-name=vdso",
            "--emit=obj",
            "--target=x86_64-unknown-none",
            "-Cpanic=abort",
            "-Copt-level=2",
            "-Ccodegen-units=1",
            "-Crelocation-model=pic",
            "-Coverflow-checks=off",
            "-Cdebug-assertions=off",
        ])
        .arg("-o")
        .arg(&obj)
        .arg(src.join("vdso.rs")));
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout).unwrap().trim());
    let host = env::var("HOST").unwrap();
    let lld = sysroot.join("lib/rustlib").join(host).join("bin/rust-lld");
    let so = out.join("vdso.so");
    let mut link = Command::new(lld);
    link.args([
        "-flavor",
        "gnu",
        "-shared",
        "-soname=linux-vdso.so.1",
        "--hash-style=both",
        "-z",
        "max-page-size=4096",
        "-z",
        "noexecstack",
        "--no-undefined",
        "--build-id=none",
        "-Bsymbolic",
    ]);
    for name in ["clock_gettime", "gettimeofday", "time", "getcpu"] {
        link.arg(format!("--defsym={name}=__vdso_{name}"));
    }
    link.arg("-T")
        .arg(src.join("vdso.lds"))
        .arg(format!(
            "--version-script={}",
            src.join("vdso.ver").display()
        ))
        .arg("-o")
        .arg(&so)
        .arg(&obj);
    run(&mut link);
    let image = fs::read(&so).unwrap();
    assert!(
        dynamic_relocations(&image) == 0,
        "the vDSO has dynamic relocations, which nothing would apply"
    );
}

/// Bytes of REL/RELA sections in an ELF64 file (0 for a vDSO that needs no loader).
fn dynamic_relocations(elf: &[u8]) -> u64 {
    let word = |at: usize, n: usize| -> u64 {
        elf[at..at + n]
            .iter()
            .rev()
            .fold(0, |acc, &b| acc << 8 | u64::from(b))
    };
    let (shoff, shentsize, shnum) = (
        word(0x28, 8) as usize,
        word(0x3a, 2) as usize,
        word(0x3c, 2),
    );
    (0..shnum as usize)
        .map(|i| shoff + i * shentsize)
        .filter(|&sh| matches!(word(sh + 4, 4), 4 | 9))
        .map(|sh| word(sh + 0x20, 8))
        .sum()
}
