//! The flag sets of the mapping syscalls with Linux's values: [`Prot`] (`PROT_*`),
//! [`MapFlags`] (`MAP_*`), and [`VmFlags`], the per-VMA state (`VM_*`) that `maps`
//! and `smaps` print.

use bitflags::bitflags;

use crate::errno::MmError;

bitflags! {
    /// `PROT_*`: the protection of a mapping as userland asks for it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Prot: u64 {
        /// `PROT_READ`.
        const READ = 0x1;
        /// `PROT_WRITE`.
        const WRITE = 0x2;
        /// `PROT_EXEC`.
        const EXEC = 0x4;
        /// `PROT_SEM` (accepted, no effect on x86).
        const SEM = 0x8;
        /// `PROT_GROWSDOWN` (mprotect only: extend down to the start of a growsdown VMA).
        const GROWSDOWN = 0x0100_0000;
        /// `PROT_GROWSUP` (mprotect only; no x86 VMA grows up).
        const GROWSUP = 0x0200_0000;
    }
}

/// `PROT_NONE`.
pub const PROT_NONE: Prot = Prot::empty();

impl Prot {
    /// The bits `mmap` accepts.
    pub const MMAP_VALID: Prot = Prot::READ
        .union(Prot::WRITE)
        .union(Prot::EXEC)
        .union(Prot::SEM);

    /// Typed `mmap` protection from raw bits: `EINVAL` for any unknown bit.
    pub fn from_mmap_bits(bits: u64) -> Result<Prot, MmError> {
        let prot = Prot::from_bits(bits).ok_or(MmError::InvalidArgument)?;
        if !Prot::MMAP_VALID.contains(prot) {
            return Err(MmError::InvalidArgument);
        }
        Ok(prot)
    }

    /// Typed `mprotect` protection (`PROT_GROWSDOWN`/`GROWSUP` allowed, not both).
    pub fn from_mprotect_bits(bits: u64) -> Result<Prot, MmError> {
        let prot = Prot::from_bits(bits).ok_or(MmError::InvalidArgument)?;
        if prot.contains(Prot::GROWSDOWN | Prot::GROWSUP) {
            return Err(MmError::InvalidArgument);
        }
        Ok(prot)
    }

    /// Only the access bits (read, write, exec).
    pub fn access(self) -> Prot {
        self & (Prot::READ | Prot::WRITE | Prot::EXEC)
    }
}

bitflags! {
    /// `MAP_*`: the flags argument of `mmap` (x86_64 values).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct MapFlags: u64 {
        /// `MAP_SHARED`.
        const SHARED = 0x01;
        /// `MAP_PRIVATE`.
        const PRIVATE = 0x02;
        /// `MAP_SHARED_VALIDATE` (both type bits): shared, unknown flags refused.
        const SHARED_VALIDATE = 0x03;
        /// `MAP_FIXED`.
        const FIXED = 0x10;
        /// `MAP_ANONYMOUS`.
        const ANONYMOUS = 0x20;
        /// `MAP_32BIT`: place below 2 GiB.
        const MAP_32BIT = 0x40;
        /// `MAP_GROWSDOWN`.
        const GROWSDOWN = 0x100;
        /// `MAP_DENYWRITE` (ignored).
        const DENYWRITE = 0x800;
        /// `MAP_EXECUTABLE` (ignored).
        const EXECUTABLE = 0x1000;
        /// `MAP_LOCKED`.
        const LOCKED = 0x2000;
        /// `MAP_NORESERVE`.
        const NORESERVE = 0x4000;
        /// `MAP_POPULATE`.
        const POPULATE = 0x8000;
        /// `MAP_NONBLOCK` (with `MAP_POPULATE`: do not populate).
        const NONBLOCK = 0x1_0000;
        /// `MAP_STACK` (a hint).
        const STACK = 0x2_0000;
        /// `MAP_HUGETLB`.
        const HUGETLB = 0x4_0000;
        /// `MAP_SYNC` (DAX only; refused).
        const SYNC = 0x8_0000;
        /// `MAP_FIXED_NOREPLACE`.
        const FIXED_NOREPLACE = 0x10_0000;
        /// `MAP_UNINITIALIZED`: refused with `EINVAL` on Peios (pages are always zeroed).
        const UNINITIALIZED = 0x400_0000;
    }
}

/// The mapping type selected by the low bits of [`MapFlags`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    /// `MAP_SHARED`.
    Shared,
    /// `MAP_SHARED_VALIDATE`.
    SharedValidate,
    /// `MAP_PRIVATE`.
    Private,
}

impl MapFlags {
    /// `MAP_TYPE`: the type bits.
    pub const TYPE_MASK: u64 = 0x0f;
    /// Every flag `MAP_SHARED_VALIDATE` accepts (Linux's `LEGACY_MAP_MASK` plus the
    /// validated ones).
    pub const KNOWN: MapFlags = MapFlags::all().difference(MapFlags::UNINITIALIZED);

    /// The mapping type: `EINVAL` when neither shared nor private.
    pub fn map_type(self) -> Result<MapType, MmError> {
        match self.bits() & Self::TYPE_MASK {
            0x01 => Ok(MapType::Shared),
            0x02 => Ok(MapType::Private),
            0x03 => Ok(MapType::SharedValidate),
            _ => Err(MmError::InvalidArgument),
        }
    }

    /// Whether the mapping is fixed (`MAP_FIXED` or `MAP_FIXED_NOREPLACE`).
    pub fn is_fixed(self) -> bool {
        self.intersects(MapFlags::FIXED | MapFlags::FIXED_NOREPLACE)
    }
}

bitflags! {
    /// `VM_*`: a VMA's state, with Linux's bit values (what `smaps` prints as `VmFlags`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct VmFlags: u64 {
        /// `VM_READ`.
        const READ = 0x1;
        /// `VM_WRITE`.
        const WRITE = 0x2;
        /// `VM_EXEC`.
        const EXEC = 0x4;
        /// `VM_SHARED`: writes go to the shared object.
        const SHARED = 0x8;
        /// `VM_MAYREAD`.
        const MAYREAD = 0x10;
        /// `VM_MAYWRITE`.
        const MAYWRITE = 0x20;
        /// `VM_MAYEXEC`.
        const MAYEXEC = 0x40;
        /// `VM_MAYSHARE`: mapped `MAP_SHARED` (even if read-only).
        const MAYSHARE = 0x80;
        /// `VM_GROWSDOWN`: a stack that grows down on faults below it.
        const GROWSDOWN = 0x100;
        /// `VM_LOCKED`: pages are populated and never reclaimed.
        const LOCKED = 0x2000;
        /// `VM_SEQ_READ`: `MADV_SEQUENTIAL`.
        const SEQ_READ = 0x8000;
        /// `VM_RAND_READ`: `MADV_RANDOM`.
        const RAND_READ = 0x1_0000;
        /// `VM_DONTCOPY`: `MADV_DONTFORK`.
        const DONTCOPY = 0x2_0000;
        /// `VM_DONTEXPAND`: mremap may not grow it.
        const DONTEXPAND = 0x4_0000;
        /// `VM_LOCKONFAULT`: with `VM_LOCKED`, pages are locked as they fault in
        /// (`MLOCK_ONFAULT`, `MCL_ONFAULT`) rather than populated at once.
        const LOCKONFAULT = 0x8_0000;
        /// `VM_ACCOUNT`: counted in the commit charge.
        const ACCOUNT = 0x10_0000;
        /// `VM_NORESERVE`: `MAP_NORESERVE`.
        const NORESERVE = 0x20_0000;
        /// `VM_WIPEONFORK`: `MADV_WIPEONFORK`.
        const WIPEONFORK = 0x200_0000;
        /// `VM_DONTDUMP`: `MADV_DONTDUMP`.
        const DONTDUMP = 0x400_0000;
        /// `VM_MERGEABLE`: `MADV_MERGEABLE` (KSM may merge its pages).
        const MERGEABLE = 0x8000_0000;
        /// `VM_PKEY_BIT0`..`VM_PKEY_BIT3`: the VMA's protection key (x86 `VM_HIGH_ARCH_0..3`).
        const PKEY_BIT0 = 1 << 32;
        /// See [`VmFlags::PKEY_BIT0`].
        const PKEY_BIT1 = 1 << 33;
        /// See [`VmFlags::PKEY_BIT0`].
        const PKEY_BIT2 = 1 << 34;
        /// See [`VmFlags::PKEY_BIT0`].
        const PKEY_BIT3 = 1 << 35;
        /// `VM_SEALED`: `mseal`ed; the VMA's range and protection can no longer change.
        const SEALED = 1 << 63;
    }
}

impl VmFlags {
    /// The access bits.
    pub const ACCESS: VmFlags = VmFlags::READ.union(VmFlags::WRITE).union(VmFlags::EXEC);
    /// The read-ahead hint bits.
    pub const READ_HINTS: VmFlags = VmFlags::SEQ_READ.union(VmFlags::RAND_READ);
    /// Linux's `VM_LOCKED_MASK`: the bits mlock and munlock change.
    pub const LOCKED_MASK: VmFlags = VmFlags::LOCKED.union(VmFlags::LOCKONFAULT);
    /// The four protection-key bits.
    pub const PKEY_MASK: VmFlags = VmFlags::PKEY_BIT0
        .union(VmFlags::PKEY_BIT1)
        .union(VmFlags::PKEY_BIT2)
        .union(VmFlags::PKEY_BIT3);

    /// The protection key (0..=15) these flags carry.
    pub fn pkey(self) -> u16 {
        ((self & VmFlags::PKEY_MASK).bits() >> 32) as u16
    }

    /// The flags with the protection key replaced by `pkey` (its low four bits).
    pub fn with_pkey(self, pkey: u16) -> VmFlags {
        (self - VmFlags::PKEY_MASK) | VmFlags::from_bits_retain((u64::from(pkey) & 0xf) << 32)
    }

    /// The access bits of `prot`.
    pub fn from_prot(prot: Prot) -> VmFlags {
        let mut f = VmFlags::empty();
        f.set(VmFlags::READ, prot.contains(Prot::READ));
        f.set(VmFlags::WRITE, prot.contains(Prot::WRITE));
        f.set(VmFlags::EXEC, prot.contains(Prot::EXEC));
        f
    }

    /// The protection these flags grant.
    pub fn prot(self) -> Prot {
        let mut p = Prot::empty();
        p.set(Prot::READ, self.contains(VmFlags::READ));
        p.set(Prot::WRITE, self.contains(VmFlags::WRITE));
        p.set(Prot::EXEC, self.contains(VmFlags::EXEC));
        p
    }

    /// The flags with the access bits replaced by `prot`.
    pub fn with_prot(self, prot: Prot) -> VmFlags {
        (self - VmFlags::ACCESS) | VmFlags::from_prot(prot)
    }

    /// Whether any access is allowed (x86 cannot express write- or exec-only, so any
    /// of the three makes the page readable).
    pub fn accessible(self) -> bool {
        self.intersects(VmFlags::ACCESS)
    }

    /// The `MAY*` bits this VMA holds, as a protection.
    pub fn may(self) -> Prot {
        let mut p = Prot::empty();
        p.set(Prot::READ, self.contains(VmFlags::MAYREAD));
        p.set(Prot::WRITE, self.contains(VmFlags::MAYWRITE));
        p.set(Prot::EXEC, self.contains(VmFlags::MAYEXEC));
        p
    }

    /// The two-letter `smaps` mnemonics of the set flags, in Linux's order.
    pub fn mnemonics(self) -> impl Iterator<Item = &'static str> {
        const TABLE: [(VmFlags, &str); 21] = [
            (VmFlags::READ, "rd"),
            (VmFlags::WRITE, "wr"),
            (VmFlags::EXEC, "ex"),
            (VmFlags::SHARED, "sh"),
            (VmFlags::MAYREAD, "mr"),
            (VmFlags::MAYWRITE, "mw"),
            (VmFlags::MAYEXEC, "me"),
            (VmFlags::MAYSHARE, "ms"),
            (VmFlags::GROWSDOWN, "gd"),
            (VmFlags::LOCKED, "lo"),
            (VmFlags::SEQ_READ, "sr"),
            (VmFlags::RAND_READ, "rr"),
            (VmFlags::DONTCOPY, "dc"),
            (VmFlags::DONTEXPAND, "de"),
            (VmFlags::ACCOUNT, "ac"),
            (VmFlags::NORESERVE, "nr"),
            (VmFlags::WIPEONFORK, "wf"),
            (VmFlags::DONTDUMP, "dd"),
            (VmFlags::MERGEABLE, "mg"),
            (VmFlags::SEALED, "sl"),
            (VmFlags::empty(), ""),
        ];
        TABLE
            .into_iter()
            .filter(move |(f, _)| !f.is_empty() && self.contains(*f))
            .map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn prot_validation() {
        assert_eq!(
            Prot::from_mmap_bits(0x7),
            Ok(Prot::READ | Prot::WRITE | Prot::EXEC)
        );
        assert_eq!(Prot::from_mmap_bits(0x10), Err(MmError::InvalidArgument));
        assert_eq!(
            Prot::from_mmap_bits(0x0100_0000),
            Err(MmError::InvalidArgument)
        );
        assert!(Prot::from_mprotect_bits(0x0100_0001).is_ok());
        assert_eq!(
            Prot::from_mprotect_bits(0x0300_0000),
            Err(MmError::InvalidArgument)
        );
    }

    #[test]
    fn map_type() {
        assert_eq!(
            MapFlags::from_bits_retain(0x22).map_type(),
            Ok(MapType::Private)
        );
        assert_eq!(
            MapFlags::from_bits_retain(0x21).map_type(),
            Ok(MapType::Shared)
        );
        assert_eq!(
            MapFlags::from_bits_retain(0x23).map_type(),
            Ok(MapType::SharedValidate)
        );
        assert_eq!(
            MapFlags::from_bits_retain(0x20).map_type(),
            Err(MmError::InvalidArgument)
        );
        assert_eq!(
            MapFlags::from_bits_retain(0x24).map_type(),
            Err(MmError::InvalidArgument)
        );
        assert!(MapFlags::FIXED_NOREPLACE.is_fixed());
        assert!(!MapFlags::KNOWN.contains(MapFlags::UNINITIALIZED));
    }

    #[test]
    fn vm_flags_prot_round_trip_and_mnemonics() {
        let f = VmFlags::MAYREAD | VmFlags::MAYWRITE;
        let g = f.with_prot(Prot::READ | Prot::WRITE);
        assert_eq!(g.prot(), Prot::READ | Prot::WRITE);
        assert_eq!(g.with_prot(Prot::EXEC).prot(), Prot::EXEC);
        assert!(!VmFlags::MAYREAD.accessible());
        let m: Vec<&str> = (g | VmFlags::GROWSDOWN | VmFlags::ACCOUNT)
            .mnemonics()
            .collect();
        assert_eq!(m, ["rd", "wr", "mr", "mw", "gd", "ac"]);
    }
}
