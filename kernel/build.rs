//! Links the kernel with its own linker script and generates the 256 interrupt entry stubs.
use std::{env, fmt::Write, fs, path::PathBuf};

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
}
