//! The x86_64 leaf-entry encoding: how a [`Pte`] or a [`SwapEntry`] becomes the 64-bit
//! word the MMU reads, and back. The kernel's hardware tables and [`SoftPageTable`]
//! both store these words, so every host test of the address-space code runs on the
//! encoding the hardware sees.
//!
//! [`SoftPageTable`]: super::SoftPageTable

use super::{Pte, PteFlags};
use crate::addr::VirtAddr;
use crate::frame::Pfn;
use crate::swap::entry::SwapEntry;

/// Hardware and software bits of an entry.
pub mod bits {
    /// The CPU may use the entry (`READ` in [`super::PteFlags`]).
    pub const PRESENT: u64 = 1 << 0;
    /// Writes allowed.
    pub const WRITABLE: u64 = 1 << 1;
    /// Ring 3 may use it (every user entry).
    pub const USER: u64 = 1 << 2;
    /// Set by the CPU on any access.
    pub const ACCESSED: u64 = 1 << 5;
    /// Set by the CPU on a write.
    pub const DIRTY: u64 = 1 << 6;
    /// In a level-1 (PMD) entry: a 2 MiB leaf rather than a table. Kept with P=0
    /// too (a `PROT_NONE` huge leaf), so a non-zero entry with it is never a table.
    pub const HUGE: u64 = 1 << 7;
    /// Software, with P clear: the entry holds a swap entry (in the address bits).
    pub const SWAP: u64 = 1 << 9;
    /// Software: an entry another fault is filling (copy-on-write in progress).
    pub const BUSY: u64 = 1 << 10;
    /// Software: a hugetlb leaf (never split). Not bit 9: with P clear that is a swap
    /// entry, and a `PROT_NONE` hugetlb leaf has P clear.
    pub const HUGETLB: u64 = 1 << 11;
    /// No instruction fetch.
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// The protection key: bits 59..63 (ignored by the CPU unless CR4.PKE is set).
    pub const PKEY_SHIFT: u32 = 59;
}

/// Physical-address bits of an entry.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The index of `va` in its table at `level` (0: the 4 KiB entries, 3: the PML4).
pub fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 511) as usize
}

/// A leaf word for `pte`. Without `READ` the entry is not present (`PROT_NONE`: the
/// frame stays attached), and `WRITE`/`EXEC` do not survive (x86 cannot write or
/// execute what it cannot read); every user entry has `USER`, and `NO_EXECUTE` unless
/// `EXEC`.
pub fn encode(pte: Pte) -> u64 {
    let f = pte.flags;
    let mut e = ((pte.pfn.0 << 12) & ADDRESS_MASK) | bits::USER;
    if f.contains(PteFlags::READ) {
        e |= bits::PRESENT;
    }
    if f.contains(PteFlags::WRITE) {
        e |= bits::WRITABLE;
    }
    if !f.contains(PteFlags::EXEC) {
        e |= bits::NO_EXECUTE;
    }
    if f.contains(PteFlags::ACCESSED) {
        e |= bits::ACCESSED;
    }
    if f.contains(PteFlags::DIRTY) {
        e |= bits::DIRTY;
    }
    if f.contains(PteFlags::BUSY) {
        e |= bits::BUSY;
    }
    if f.contains(PteFlags::HUGETLB) {
        e |= bits::HUGETLB;
    }
    e | (u64::from(f.pkey()) << bits::PKEY_SHIFT)
}

/// The entry word `e` holds, if it maps a frame: an entry is in use iff it is
/// non-zero (a `PROT_NONE` entry keeps its frame with P=0); a swap entry is not a
/// mapping (see [`decode_swap`]).
pub fn decode(e: u64) -> Option<Pte> {
    if e == 0 || is_swap(e) {
        return None;
    }
    let mut f = PteFlags::empty();
    if e & bits::PRESENT != 0 {
        f |= PteFlags::READ;
        if e & bits::NO_EXECUTE == 0 {
            f |= PteFlags::EXEC;
        }
        if e & bits::WRITABLE != 0 {
            f |= PteFlags::WRITE;
        }
    }
    if e & bits::ACCESSED != 0 {
        f |= PteFlags::ACCESSED;
    }
    if e & bits::DIRTY != 0 {
        f |= PteFlags::DIRTY;
    }
    if e & bits::BUSY != 0 {
        f |= PteFlags::BUSY;
    }
    f |= PteFlags::for_pkey(((e >> bits::PKEY_SHIFT) & 0xf) as u16);
    if e & bits::HUGETLB != 0 {
        f |= PteFlags::HUGETLB;
    }
    Some(Pte::new(Pfn((e & ADDRESS_MASK) >> 12), f))
}

/// Whether entry word `e` holds a swap entry.
pub fn is_swap(e: u64) -> bool {
    e & (bits::PRESENT | bits::SWAP) == bits::SWAP
}

/// A swap entry's word: P clear, the SWAP bit, the entry in bits 12 and up (45 bits,
/// below the NX bit), nothing the hardware would read.
pub fn encode_swap(swap: SwapEntry) -> u64 {
    (swap.raw() << 12) | bits::SWAP
}

/// The swap entry word `e` holds, if it is one.
pub fn decode_swap(e: u64) -> Option<SwapEntry> {
    is_swap(e).then(|| SwapEntry::from_raw(e >> 12))
}

/// Whether a level-1 word is a huge leaf (rather than a table).
pub fn is_huge(e: u64) -> bool {
    e & bits::HUGE != 0
}

/// The 4 KiB view of page `va` under the huge leaf `word`.
pub fn sub_entry(word: u64, va: VirtAddr) -> Option<Pte> {
    let head = decode(word)?;
    Some(Pte::new(head.pfn.add(va.page_in_huge()), head.flags))
}

/// A 4 KiB entry word with the flags and `n`th frame of the huge leaf `word` (not
/// `BUSY`: the split that writes it owns the leaf).
pub fn sub_word(word: u64, n: u64) -> u64 {
    let flags = (word & !ADDRESS_MASK & !bits::HUGE) & !bits::BUSY;
    ((word & ADDRESS_MASK) + (n << 12)) | flags
}

/// A non-leaf entry pointing at table `phys`.
pub fn table_entry(phys: u64) -> u64 {
    phys | bits::PRESENT | bits::WRITABLE | bits::USER
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagetable::HUGE_SIZE;
    use proptest::prelude::*;

    /// The flags x86 keeps for `f`: without READ, no WRITE or EXEC.
    fn kept(f: PteFlags) -> PteFlags {
        if f.contains(PteFlags::READ) {
            f
        } else {
            f - PteFlags::WRITE - PteFlags::EXEC
        }
    }

    fn flags_from(bits7: u16, pkey: u16) -> PteFlags {
        PteFlags::from_bits_truncate(bits7 & 0x7f) | PteFlags::for_pkey(pkey)
    }

    proptest! {
        #[test]
        fn entries_round_trip(pfn in 0u64..(1 << 40), bits7 in 0u16..128, pkey in 0u16..16) {
            let f = flags_from(bits7, pkey);
            let word = encode(Pte::new(Pfn(pfn), f));
            prop_assert_eq!(decode(word), Some(Pte::new(Pfn(pfn), kept(f))));
            prop_assert!(!is_swap(word), "a mapping is never read as a swap entry");
            prop_assert!(word & bits::USER != 0);
            prop_assert_eq!(word & bits::PRESENT != 0, f.contains(PteFlags::READ));
            prop_assert_eq!(word & bits::NO_EXECUTE != 0, !f.contains(PteFlags::EXEC));
            prop_assert_eq!(word & bits::HUGE, 0, "a 4 KiB encoding never claims a huge leaf");
        }

        #[test]
        fn swap_entries_round_trip(area in 0u8..32, slot in 0u64..(1 << 32)) {
            let entry = SwapEntry::new(area, slot);
            let word = encode_swap(entry);
            prop_assert!(is_swap(word));
            prop_assert_eq!(word & bits::PRESENT, 0, "the CPU never uses a swap entry");
            prop_assert_eq!(word & bits::NO_EXECUTE, 0);
            prop_assert_eq!(decode_swap(word), Some(entry));
            prop_assert_eq!(decode(word), None, "a swap entry maps nothing");
        }

        #[test]
        fn a_huge_leaf_splits_into_its_pages(
            head in 0u64..(1 << 30),
            bits7 in 0u16..128,
            pkey in 0u16..16,
            n in 0u64..512,
        ) {
            let head = head & !511;
            let f = flags_from(bits7, pkey) - PteFlags::BUSY;
            let leaf = encode(Pte::new(Pfn(head), f)) | bits::HUGE;
            let va = VirtAddr::new(0x4000_0000 + n * 4096);
            prop_assert_eq!(decode(sub_word(leaf, n)), sub_entry(leaf, va));
            prop_assert_eq!(sub_entry(leaf, va), Some(Pte::new(Pfn(head + n), kept(f))));
            prop_assert!(!is_huge(sub_word(leaf, n)));
        }
    }

    #[test]
    fn prot_none_keeps_its_frame_and_empty_is_zero() {
        let none = encode(Pte::new(Pfn(77), PteFlags::empty()));
        assert_ne!(none, 0, "a PROT_NONE entry is still in use");
        assert_eq!(none & bits::PRESENT, 0);
        assert_eq!(decode(none).map(|p| p.pfn), Some(Pfn(77)));
        assert_eq!(decode(0), None);
        // A PROT_NONE hugetlb leaf is not mistaken for a swap entry.
        let hugetlb = encode(Pte::new(Pfn(512), PteFlags::HUGETLB)) | bits::HUGE;
        assert!(!is_swap(hugetlb));
    }

    #[test]
    fn indexes_and_tables() {
        let va = 0x0000_7f12_3456_7000u64;
        assert_eq!(index(va, 0), ((va >> 12) & 511) as usize);
        assert_eq!(index(va, 3), ((va >> 39) & 511) as usize);
        assert_eq!(index(HUGE_SIZE, 1), 1);
        let t = table_entry(0x1234_5000);
        assert_eq!(t & ADDRESS_MASK, 0x1234_5000);
        assert_eq!(t & (bits::PRESENT | bits::WRITABLE | bits::USER), 7);
        assert!(!is_huge(t));
    }
}
