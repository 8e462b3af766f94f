//! Security identifiers (SIDs): who a token is and which groups it belongs to.
//!
//! A SID is `S-<revision>-<authority>-<sub-authority>...`, as in NT. Peios maps
//! Linux ids onto SIDs so the kernel can answer the getuid family from a token:
//!
//! - uid `n` is `S-1-5-21-0-0-0-n` ([`Sid::user`]), gid `n` is `S-1-5-21-0-0-1-n`
//!   ([`Sid::group`]): two local "domains" so a uid and a gid with the same
//!   number never name the same principal;
//! - `SYSTEM` (S-1-5-18) is uid 0 and gid 0 (root's view of init's identity).

use core::fmt;

use crate::error::SidError;

/// The most sub-authorities a SID may carry (NT's `SID_MAX_SUB_AUTHORITIES`).
pub const MAX_SUB_AUTHORITIES: usize = 15;

/// The only SID revision there is.
pub const SID_REVISION: u8 = 1;

/// `SECURITY_WORLD_SID_AUTHORITY`: the authority of `Everyone`.
pub const WORLD_AUTHORITY: u64 = 1;
/// `SECURITY_NT_AUTHORITY`: the authority of SYSTEM, built-in groups and users.
pub const NT_AUTHORITY: u64 = 5;

/// `SECURITY_NT_NON_UNIQUE` (21): the first sub-authority of a domain SID.
const NT_NON_UNIQUE: u32 = 21;
/// The sub-authorities of the local user domain, `S-1-5-21-0-0-0`.
const USER_DOMAIN: [u32; 4] = [NT_NON_UNIQUE, 0, 0, 0];
/// The sub-authorities of the local group domain, `S-1-5-21-0-0-1`.
const GROUP_DOMAIN: [u32; 4] = [NT_NON_UNIQUE, 0, 0, 1];
/// `SECURITY_LOGON_IDS_RID`: the first sub-authority of a logon SID.
const LOGON_RID: u32 = 5;

/// A security identifier: revision, 48-bit identifier authority and up to
/// [`MAX_SUB_AUTHORITIES`] sub-authorities. Fixed size and `Copy`, so it can be
/// built in `const` context and embedded in ACEs without allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sid {
    revision: u8,
    count: u8,
    authority: u64,
    /// Only the first `count` entries are meaningful; the rest stay zero so the
    /// derived equality compares SIDs correctly.
    subs: [u32; MAX_SUB_AUTHORITIES],
}

impl Sid {
    /// `Everyone`, S-1-1-0: every token matches it.
    pub const EVERYONE: Sid = Sid::from_parts(WORLD_AUTHORITY, &[0]);
    /// `SYSTEM` (LocalSystem), S-1-5-18: init's identity.
    pub const SYSTEM: Sid = Sid::from_parts(NT_AUTHORITY, &[18]);
    /// `BUILTIN\Administrators`, S-1-5-32-544.
    pub const ADMINISTRATORS: Sid = Sid::from_parts(NT_AUTHORITY, &[32, 544]);
    /// `BUILTIN\Users`, S-1-5-32-545.
    pub const USERS: Sid = Sid::from_parts(NT_AUTHORITY, &[32, 545]);

    /// Builds a SID from its authority and sub-authorities (revision 1).
    pub fn new(authority: u64, sub_authorities: &[u32]) -> Result<Sid, SidError> {
        if sub_authorities.len() > MAX_SUB_AUTHORITIES {
            return Err(SidError::TooManySubAuthorities);
        }
        if authority >> 48 != 0 {
            return Err(SidError::AuthorityTooLarge);
        }
        Ok(Sid::from_parts(authority, sub_authorities))
    }

    /// `const` constructor for the well-known SIDs; the bounds are checked by
    /// [`Sid::new`] for everything else (a violation here fails compilation).
    const fn from_parts(authority: u64, sub_authorities: &[u32]) -> Sid {
        assert!(sub_authorities.len() <= MAX_SUB_AUTHORITIES);
        assert!(authority >> 48 == 0);
        let mut subs = [0u32; MAX_SUB_AUTHORITIES];
        let mut i = 0;
        while i < sub_authorities.len() {
            subs[i] = sub_authorities[i];
            i += 1;
        }
        Sid {
            revision: SID_REVISION,
            count: sub_authorities.len() as u8,
            authority,
            subs,
        }
    }

    /// A domain SID `domain-rid` (the domain has 4 sub-authorities).
    const fn in_domain(domain: [u32; 4], rid: u32) -> Sid {
        Sid::from_parts(
            NT_AUTHORITY,
            &[domain[0], domain[1], domain[2], domain[3], rid],
        )
    }

    /// The user SID for Linux uid `uid`: `S-1-5-21-0-0-0-<uid>`.
    pub const fn user(uid: u32) -> Sid {
        Sid::in_domain(USER_DOMAIN, uid)
    }

    /// The group SID for Linux gid `gid`: `S-1-5-21-0-0-1-<gid>`.
    pub const fn group(gid: u32) -> Sid {
        Sid::in_domain(GROUP_DOMAIN, gid)
    }

    /// A logon SID, `S-1-5-5-0-<session>`: one per logon session (on Peios, per
    /// restricted token), enabled in that session's tokens. Process descriptors grant
    /// it, so a process whose user SID is deny-only can still manage its own children.
    pub const fn logon(session: u32) -> Sid {
        Sid::from_parts(NT_AUTHORITY, &[LOGON_RID, 0, session])
    }

    /// Whether this is a [`Sid::logon`] SID.
    pub fn is_logon(&self) -> bool {
        self.authority == NT_AUTHORITY && self.count == 3 && self.subs[0] == LOGON_RID
    }

    /// The Linux uid this SID stands for: the RID of a [`Sid::user`] SID, 0 for
    /// SYSTEM, `None` for anything else.
    pub fn uid(&self) -> Option<u32> {
        self.linux_id(USER_DOMAIN)
    }

    /// The Linux gid this SID stands for: the RID of a [`Sid::group`] SID, 0 for
    /// SYSTEM, `None` for anything else.
    pub fn gid(&self) -> Option<u32> {
        self.linux_id(GROUP_DOMAIN)
    }

    fn linux_id(&self, domain: [u32; 4]) -> Option<u32> {
        if *self == Sid::SYSTEM {
            return Some(0);
        }
        match self.sub_authorities() {
            [a, b, c, d, rid] if self.authority == NT_AUTHORITY && [*a, *b, *c, *d] == domain => {
                Some(*rid)
            }
            _ => None,
        }
    }

    /// The revision (always [`SID_REVISION`]).
    pub const fn revision(&self) -> u8 {
        self.revision
    }

    /// The 48-bit identifier authority.
    pub const fn authority(&self) -> u64 {
        self.authority
    }

    /// The sub-authorities, most significant first.
    pub fn sub_authorities(&self) -> &[u32] {
        &self.subs[..usize::from(self.count)]
    }

    /// The relative identifier: the last sub-authority, if there is one.
    pub fn rid(&self) -> Option<u32> {
        self.sub_authorities().last().copied()
    }
}

impl fmt::Display for Sid {
    /// `S-1-5-21-0-0-0-1000`; an authority of 2^32 or more is printed in hex, as NT does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-{}-", self.revision)?;
        if self.authority >> 32 == 0 {
            write!(f, "{}", self.authority)?;
        } else {
            write!(f, "{:#014X}", self.authority)?;
        }
        for sub in self.sub_authorities() {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn well_known_sids_display_as_nt_does() {
        assert_eq!(Sid::EVERYONE.to_string(), "S-1-1-0");
        assert_eq!(Sid::SYSTEM.to_string(), "S-1-5-18");
        assert_eq!(Sid::ADMINISTRATORS.to_string(), "S-1-5-32-544");
        assert_eq!(Sid::USERS.to_string(), "S-1-5-32-545");
        assert_eq!(Sid::user(1000).to_string(), "S-1-5-21-0-0-0-1000");
        assert_eq!(Sid::group(100).to_string(), "S-1-5-21-0-0-1-100");
    }

    #[test]
    fn linux_ids_round_trip() {
        assert_eq!(Sid::user(1000).uid(), Some(1000));
        assert_eq!(Sid::group(1000).gid(), Some(1000));
        assert_eq!(Sid::user(1000).gid(), None, "a user SID is not a group id");
        assert_eq!(Sid::group(1000).uid(), None, "a group SID is not a user id");
        assert_ne!(Sid::user(7), Sid::group(7));
        assert_eq!(Sid::SYSTEM.uid(), Some(0));
        assert_eq!(Sid::SYSTEM.gid(), Some(0));
        assert_eq!(Sid::ADMINISTRATORS.uid(), None);
        assert_eq!(Sid::EVERYONE.gid(), None);
    }

    #[test]
    fn new_checks_bounds() {
        assert_eq!(Sid::new(5, &[18]), Ok(Sid::SYSTEM));
        assert_eq!(Sid::new(5, &[1; 16]), Err(SidError::TooManySubAuthorities));
        assert_eq!(Sid::new(1 << 48, &[1]), Err(SidError::AuthorityTooLarge));
        let big = Sid::new(0x1234_5678_9abc, &[1]).expect("fits");
        assert_eq!(big.to_string(), "S-1-0x123456789ABC-1");
        assert_eq!(Sid::new(5, &[]).expect("empty is fine").rid(), None);
    }
}
