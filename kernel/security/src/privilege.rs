//! Privileges: system-wide rights a token holds, each enabled or disabled.
//!
//! Privileges replace Linux capabilities. A token *holds* a set of privileges
//! and has a subset of them *enabled*; only enabled privileges count in a check.
//! A held privilege can be enabled and disabled at will; one that is not held
//! can never be enabled (a token only ever loses privileges).

use core::fmt;

use bitflags::bitflags;

/// A Peios privilege, named as in NT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Privilege {
    /// Act as part of the trusted computing base: pagemap frame numbers,
    /// mapping below `mmap_min_addr` (the CAP_SYS_RAWIO cases).
    SeTcbPrivilege,
    /// Lock pages in memory beyond `RLIMIT_MEMLOCK` (CAP_IPC_LOCK).
    SeLockMemoryPrivilege,
    /// Create and remove paging files: swapon/swapoff.
    SeCreatePagefilePrivilege,
    /// Raise scheduling priority (CAP_SYS_NICE).
    SeIncreaseBasePriorityPrivilege,
    /// Raise quotas and resource limits, opt out of OOM victim selection
    /// (CAP_SYS_RESOURCE).
    SeIncreaseQuotaPrivilege,
    /// Open any process regardless of its DACL (never past PIP).
    SeDebugPrivilege,
    /// Shut down or reboot the system.
    SeShutdownPrivilege,
    /// Change the system time.
    SeSystemtimePrivilege,
    /// Load and unload drivers (kernel modules).
    SeLoadDriverPrivilege,
}

impl Privilege {
    /// Every privilege, in declaration order.
    pub const ALL: [Privilege; 9] = [
        Privilege::SeTcbPrivilege,
        Privilege::SeLockMemoryPrivilege,
        Privilege::SeCreatePagefilePrivilege,
        Privilege::SeIncreaseBasePriorityPrivilege,
        Privilege::SeIncreaseQuotaPrivilege,
        Privilege::SeDebugPrivilege,
        Privilege::SeShutdownPrivilege,
        Privilege::SeSystemtimePrivilege,
        Privilege::SeLoadDriverPrivilege,
    ];

    /// The privilege's NT name, e.g. `"SeDebugPrivilege"`.
    pub const fn name(self) -> &'static str {
        match self {
            Privilege::SeTcbPrivilege => "SeTcbPrivilege",
            Privilege::SeLockMemoryPrivilege => "SeLockMemoryPrivilege",
            Privilege::SeCreatePagefilePrivilege => "SeCreatePagefilePrivilege",
            Privilege::SeIncreaseBasePriorityPrivilege => "SeIncreaseBasePriorityPrivilege",
            Privilege::SeIncreaseQuotaPrivilege => "SeIncreaseQuotaPrivilege",
            Privilege::SeDebugPrivilege => "SeDebugPrivilege",
            Privilege::SeShutdownPrivilege => "SeShutdownPrivilege",
            Privilege::SeSystemtimePrivilege => "SeSystemtimePrivilege",
            Privilege::SeLoadDriverPrivilege => "SeLoadDriverPrivilege",
        }
    }

    /// The privilege's bit in a [`PrivilegeMask`].
    pub const fn mask(self) -> PrivilegeMask {
        PrivilegeMask::from_bits_retain(1 << self as u32)
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

bitflags! {
    /// A set of privileges, one bit per [`Privilege`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct PrivilegeMask: u32 {
        /// [`Privilege::SeTcbPrivilege`].
        const TCB = Privilege::SeTcbPrivilege.mask().bits();
        /// [`Privilege::SeLockMemoryPrivilege`].
        const LOCK_MEMORY = Privilege::SeLockMemoryPrivilege.mask().bits();
        /// [`Privilege::SeCreatePagefilePrivilege`].
        const CREATE_PAGEFILE = Privilege::SeCreatePagefilePrivilege.mask().bits();
        /// [`Privilege::SeIncreaseBasePriorityPrivilege`].
        const INCREASE_BASE_PRIORITY = Privilege::SeIncreaseBasePriorityPrivilege.mask().bits();
        /// [`Privilege::SeIncreaseQuotaPrivilege`].
        const INCREASE_QUOTA = Privilege::SeIncreaseQuotaPrivilege.mask().bits();
        /// [`Privilege::SeDebugPrivilege`].
        const DEBUG = Privilege::SeDebugPrivilege.mask().bits();
        /// [`Privilege::SeShutdownPrivilege`].
        const SHUTDOWN = Privilege::SeShutdownPrivilege.mask().bits();
        /// [`Privilege::SeSystemtimePrivilege`].
        const SYSTEMTIME = Privilege::SeSystemtimePrivilege.mask().bits();
        /// [`Privilege::SeLoadDriverPrivilege`].
        const LOAD_DRIVER = Privilege::SeLoadDriverPrivilege.mask().bits();
    }
}

/// The privileges of a token: which are held (present) and which of those are
/// enabled. Invariant: `enabled ⊆ present`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PrivilegeSet {
    present: PrivilegeMask,
    enabled: PrivilegeMask,
}

impl PrivilegeSet {
    /// No privileges at all.
    pub const fn none() -> Self {
        Self {
            present: PrivilegeMask::empty(),
            enabled: PrivilegeMask::empty(),
        }
    }

    /// Every privilege held and enabled (init's set).
    pub const fn all_enabled() -> Self {
        Self {
            present: PrivilegeMask::all(),
            enabled: PrivilegeMask::all(),
        }
    }

    /// `present` held, of which `enabled` enabled; enabled bits that are not
    /// held are dropped (a privilege cannot be enabled without being held).
    pub const fn new(present: PrivilegeMask, enabled: PrivilegeMask) -> Self {
        Self {
            present,
            enabled: enabled.intersection(present),
        }
    }

    /// The held privileges, enabled or not.
    pub const fn present(&self) -> PrivilegeMask {
        self.present
    }

    /// The enabled privileges: the ones that count.
    pub const fn enabled(&self) -> PrivilegeMask {
        self.enabled
    }

    /// Whether `p` is held (enabled or not).
    pub const fn holds(&self, p: Privilege) -> bool {
        self.present.contains(p.mask())
    }

    /// Whether `p` is held and enabled: the only state in which it counts.
    pub const fn is_enabled(&self, p: Privilege) -> bool {
        self.enabled.contains(p.mask())
    }

    /// Enables a held privilege; fails for one that is not held.
    pub fn enable(&mut self, p: Privilege) -> Result<(), NotHeld> {
        if !self.holds(p) {
            return Err(NotHeld(p));
        }
        self.enabled.insert(p.mask());
        Ok(())
    }

    /// Disables a held privilege (it stays held); fails for one that is not held.
    pub fn disable(&mut self, p: Privilege) -> Result<(), NotHeld> {
        if !self.holds(p) {
            return Err(NotHeld(p));
        }
        self.enabled.remove(p.mask());
        Ok(())
    }

    /// Drops `p` altogether: it can never be enabled again in this set.
    pub fn remove(&mut self, p: Privilege) {
        self.present.remove(p.mask());
        self.enabled.remove(p.mask());
    }
}

/// A privilege could not be enabled because the token does not hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotHeld(pub Privilege);

impl fmt::Display for NotHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not held", self.0)
    }
}

impl core::error::Error for NotHeld {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn names_and_bits_are_distinct() {
        let mut seen = PrivilegeMask::empty();
        for p in Privilege::ALL {
            assert!(!seen.intersects(p.mask()), "{p} shares a bit");
            seen |= p.mask();
            assert_eq!(p.to_string(), p.name());
            assert!(p.name().starts_with("Se") && p.name().ends_with("Privilege"));
        }
        assert_eq!(seen, PrivilegeMask::all());
    }

    #[test]
    fn held_but_disabled_does_not_count() {
        let mut set = PrivilegeSet::new(PrivilegeMask::DEBUG, PrivilegeMask::empty());
        assert!(set.holds(Privilege::SeDebugPrivilege));
        assert!(!set.is_enabled(Privilege::SeDebugPrivilege));
        set.enable(Privilege::SeDebugPrivilege).expect("held");
        assert!(set.is_enabled(Privilege::SeDebugPrivilege));
        set.disable(Privilege::SeDebugPrivilege).expect("held");
        assert!(!set.is_enabled(Privilege::SeDebugPrivilege));
        assert!(
            set.holds(Privilege::SeDebugPrivilege),
            "disabling keeps it held"
        );
    }

    #[test]
    fn only_held_privileges_can_be_enabled() {
        let mut set = PrivilegeSet::none();
        assert_eq!(
            set.enable(Privilege::SeTcbPrivilege),
            Err(NotHeld(Privilege::SeTcbPrivilege))
        );
        assert_eq!(
            set.disable(Privilege::SeTcbPrivilege),
            Err(NotHeld(Privilege::SeTcbPrivilege))
        );
        assert!(!set.is_enabled(Privilege::SeTcbPrivilege));
        // Enabled bits that are not held are dropped at construction.
        let set = PrivilegeSet::new(PrivilegeMask::empty(), PrivilegeMask::TCB);
        assert_eq!(set.enabled(), PrivilegeMask::empty());
    }

    #[test]
    fn removed_privilege_cannot_come_back() {
        let mut set = PrivilegeSet::all_enabled();
        set.remove(Privilege::SeShutdownPrivilege);
        assert!(!set.holds(Privilege::SeShutdownPrivilege));
        assert!(set.enable(Privilege::SeShutdownPrivilege).is_err());
        assert!(set.is_enabled(Privilege::SeTcbPrivilege));
    }
}
