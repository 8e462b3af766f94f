#!/usr/bin/env python3
"""Post-link step for kernel-image KASLR.

The kernel is linked with --emit-relocs. This script finds every absolute reference to
an address inside the kernel image (R_X86_64_64 and R_X86_64_32S relocations in
allocated sections whose linked value points into the image) and writes their offsets
into the kernel's `.kaslr_relocs` table, so the boot code can move the image to a random
virtual base by adding the same delta to each, plus the GOT slots the linker filled. References whose value is outside the
image (physical addresses computed as `symbol - KERNEL_VMA`, constants) are left alone.

Table layout (little-endian u32): magic 0x4b41534c ("KASL"), count of 64-bit slots,
count of 32-bit slots, then the offsets (from __kernel_start) of the 64-bit slots and
then of the 32-bit ones. Usage: kaslr-relocs.py KERNEL_ELF
"""
import struct
import sys

R_X86_64_64 = 1
R_X86_64_32S = 11
SHT_RELA = 4
SHF_ALLOC = 2
MAGIC = 0x4B41534C


def main(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if data[:4] != b"\x7fELF" or data[4] != 2:
        sys.exit("kaslr-relocs: not an ELF64 file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = []
    for i in range(shnum):
        name, stype, flags, addr, off, size, link, info, align, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, shoff + i * shentsize)
        sections.append(dict(name=name, type=stype, flags=flags, addr=addr, off=off, size=size,
                             link=link, info=info, entsize=entsize))
    strtab = sections[shstrndx]

    def sname(s):
        start = strtab["off"] + s["name"]
        return data[start:data.index(b"\0", start)].decode()

    symtab = next(s for s in sections if sname(s) == ".symtab")
    symstr = sections[symtab["link"]]

    def symbol(name):
        for i in range(symtab["size"] // 24):
            st_name, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, symtab["off"] + i * 24)
            start = symstr["off"] + st_name
            if data[start:data.index(b"\0", start)].decode() == name:
                return value
        sys.exit(f"kaslr-relocs: symbol {name} not found")

    start, end = symbol("__kernel_start"), symbol("__kernel_end")

    def file_offset(vaddr):
        for s in sections:
            if s["flags"] & SHF_ALLOC and s["type"] != 8 and s["addr"] <= vaddr < s["addr"] + s["size"]:
                return s["off"] + vaddr - s["addr"]
        return None

    slots64, slots32 = set(), set()
    for s in sections:
        if s["type"] != SHT_RELA or not (sections[s["info"]]["flags"] & SHF_ALLOC):
            continue
        for i in range(s["size"] // 24):
            r_offset, r_info, _ = struct.unpack_from("<QQq", data, s["off"] + i * 24)
            kind = r_info & 0xFFFFFFFF
            if kind not in (R_X86_64_64, R_X86_64_32S) or not start <= r_offset < end:
                continue
            at = file_offset(r_offset)
            if at is None:  # .bss: nothing stored in the file
                continue
            if kind == R_X86_64_64:
                (value,) = struct.unpack_from("<Q", data, at)
                if start <= value <= end:
                    slots64.add(r_offset - start)
            else:
                (value,) = struct.unpack_from("<i", data, at)
                if start <= (value & 0xFFFFFFFFFFFFFFFF) <= end:
                    slots32.add(r_offset - start)

    # The GOT is filled by the linker itself (no relocation records): every slot holding an
    # image address moves too.
    for s in sections:
        if sname(s) in (".got", ".got.plt"):
            for i in range(s["size"] // 8):
                (value,) = struct.unpack_from("<Q", data, s["off"] + i * 8)
                if start <= value <= end:
                    slots64.add(s["addr"] + i * 8 - start)

    table = next(s for s in sections if sname(s) == ".kaslr_relocs")
    payload = struct.pack("<III", MAGIC, len(slots64), len(slots32))
    payload += b"".join(struct.pack("<I", o) for o in sorted(slots64))
    payload += b"".join(struct.pack("<I", o) for o in sorted(slots32))
    if len(payload) > table["size"]:
        sys.exit(f"kaslr-relocs: table needs {len(payload)} bytes, .kaslr_relocs has {table['size']}")
    payload += bytes(table["size"] - len(payload))
    data[table["off"]:table["off"] + table["size"]] = payload
    with open(path, "wb") as f:
        f.write(data)
    print(f"kaslr-relocs: {len(slots64)} 64-bit and {len(slots32)} 32-bit slots in {path}")


if __name__ == "__main__":
    main(sys.argv[1])
