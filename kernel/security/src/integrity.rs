//! Process integrity protection (PIP): integrity levels, dominance, mandatory labels.
//!
//! Every token runs at an [`IntegrityLevel`] and every object carries a
//! [`MandatoryLabel`]. Two rules use them, both checked *after* and *regardless
//! of* privileges:
//!
//! - **Dominance** ([`dominates`]): a caller may influence a process only if its
//!   level is greater than or equal to the target's. `Protected` is the top
//!   level, so a non-protected caller can never influence a protected process,
//!   whatever privileges it holds (NT protected-process semantics; SeDebug does
//!   not help). Protected callers dominate everything.
//! - **Mandatory label** ([`MandatoryLabel::permitted`], NT mandatory integrity
//!   control): a caller below the object's label keeps only the rights of the
//!   buckets the label's policy leaves open. `NO_WRITE_UP` closes the write
//!   bucket (the type's `GENERIC_WRITE` mapping plus `DELETE`, `WRITE_DAC` and
//!   `WRITE_OWNER`), `NO_READ_UP` the read bucket, `NO_EXECUTE_UP` the execute
//!   bucket. Rights in no open bucket are closed too: lower callers get only
//!   what is explicitly safe. A caller at or above the label is not filtered.

use core::fmt;

use bitflags::bitflags;

use crate::access_mask::AccessMask;
use crate::generic_mapping::GenericMapping;

/// A PIP level, with NT's mandatory-label RID values. Ordered: a higher level
/// dominates a lower one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum IntegrityLevel {
    /// Sandboxed, trusted with nothing (`S-1-16-0`).
    Untrusted = 0x0000,
    /// Low integrity (`S-1-16-4096`).
    Low = 0x1000,
    /// Ordinary user processes (`S-1-16-8192`).
    Medium = 0x2000,
    /// Administrative processes (`S-1-16-12288`).
    High = 0x3000,
    /// Init and system services (`S-1-16-16384`).
    System = 0x4000,
    /// Protected processes (`S-1-16-20480`): only other protected processes
    /// may influence them.
    Protected = 0x5000,
}

impl IntegrityLevel {
    /// The numeric level (the RID of its `S-1-16-*` label SID).
    pub const fn value(self) -> u32 {
        self as u32
    }

    /// Whether a caller at `self` may influence a target at `target`: `self >= target`.
    pub fn dominates(self, target: IntegrityLevel) -> bool {
        self >= target
    }

    /// The level's name, e.g. `"Medium"`.
    pub const fn name(self) -> &'static str {
        match self {
            IntegrityLevel::Untrusted => "Untrusted",
            IntegrityLevel::Low => "Low",
            IntegrityLevel::Medium => "Medium",
            IntegrityLevel::High => "High",
            IntegrityLevel::System => "System",
            IntegrityLevel::Protected => "Protected",
        }
    }
}

impl fmt::Display for IntegrityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `caller` may influence a target at level `target` (PIP dominance:
/// `caller >= target`). No privilege overrides this.
pub fn dominates(caller: IntegrityLevel, target: IntegrityLevel) -> bool {
    caller.dominates(target)
}

bitflags! {
    /// What a mandatory label forbids callers below its level (NT values).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct MandatoryPolicy: u32 {
        /// Lower callers get no write-type rights.
        const NO_WRITE_UP = 0x1;
        /// Lower callers get no read-type rights.
        const NO_READ_UP = 0x2;
        /// Lower callers get no execute-type rights.
        const NO_EXECUTE_UP = 0x4;
    }
}

/// An object's mandatory integrity label: its level and what it forbids
/// callers below that level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MandatoryLabel {
    /// The object's level.
    pub level: IntegrityLevel,
    /// What callers below `level` may not do.
    pub policy: MandatoryPolicy,
}

impl MandatoryLabel {
    /// A label at `level` with `policy`.
    pub const fn new(level: IntegrityLevel, policy: MandatoryPolicy) -> Self {
        Self { level, policy }
    }

    /// The rights a caller at `caller` may be granted on an object with this
    /// label: every right if `caller` dominates the label, else only the open
    /// buckets of `mapping` (see the module documentation).
    pub fn permitted(&self, caller: IntegrityLevel, mapping: &GenericMapping) -> AccessMask {
        if caller.dominates(self.level) {
            return AccessMask::all();
        }
        let mut open = AccessMask::empty();
        if !self.policy.contains(MandatoryPolicy::NO_READ_UP) {
            open |= mapping.read;
        }
        if !self.policy.contains(MandatoryPolicy::NO_WRITE_UP) {
            open |= mapping.write
                | AccessMask::DELETE
                | AccessMask::WRITE_DAC
                | AccessMask::WRITE_OWNER;
        }
        if !self.policy.contains(MandatoryPolicy::NO_EXECUTE_UP) {
            open |= mapping.execute;
        }
        open
    }
}

impl Default for MandatoryLabel {
    /// NT's implicit label for an object without one: Medium, `NO_WRITE_UP`.
    fn default() -> Self {
        Self::new(IntegrityLevel::Medium, MandatoryPolicy::NO_WRITE_UP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_with_nt_values() {
        use IntegrityLevel::*;
        let order = [Untrusted, Low, Medium, High, System, Protected];
        for pair in order.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[1].value() - pair[0].value() == 0x1000);
        }
        assert_eq!(Medium.value(), 0x2000);
    }

    #[test]
    fn dominance_is_greater_or_equal() {
        use IntegrityLevel::*;
        assert!(dominates(Medium, Medium));
        assert!(dominates(System, Medium));
        assert!(!dominates(Medium, High));
        assert!(!dominates(Medium, System));
        assert!(
            !dominates(System, Protected),
            "only protected reaches protected"
        );
        assert!(dominates(Protected, Protected));
        assert!(dominates(Protected, System));
    }

    #[test]
    fn label_filters_only_lower_callers() {
        let m = GenericMapping::PROCESS;
        let label = MandatoryLabel::new(
            IntegrityLevel::High,
            MandatoryPolicy::NO_WRITE_UP | MandatoryPolicy::NO_READ_UP,
        );
        assert_eq!(label.permitted(IntegrityLevel::High, &m), AccessMask::all());
        assert_eq!(
            label.permitted(IntegrityLevel::System, &m),
            AccessMask::all()
        );
        let lower = label.permitted(IntegrityLevel::Medium, &m);
        assert!(lower.contains(AccessMask::PROCESS_QUERY_LIMITED_INFORMATION));
        assert!(lower.contains(AccessMask::SYNCHRONIZE));
        assert!(!lower.intersects(AccessMask::PROCESS_TERMINATE | AccessMask::PROCESS_VM_READ));
        assert!(
            !lower.intersects(AccessMask::WRITE_DAC | AccessMask::WRITE_OWNER | AccessMask::DELETE)
        );
    }

    #[test]
    fn no_write_up_alone_leaves_reading() {
        let m = GenericMapping::KEY;
        let lower = MandatoryLabel::default().permitted(IntegrityLevel::Low, &m);
        assert!(lower.contains(AccessMask::KEY_READ));
        assert!(!lower.intersects(AccessMask::KEY_SET_VALUE | AccessMask::KEY_CREATE_SUB_KEY));
    }
}
