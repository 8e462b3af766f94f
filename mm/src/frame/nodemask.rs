//! `NodeMask`: a fixed-size set of NUMA nodes, the argument of bind and interleave policies.

use core::fmt;

use super::types::{NodeId, MAX_NUMNODES};

/// A set of up to [`MAX_NUMNODES`] nodes, one bit each (Linux's `nodemask_t`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NodeMask(u64);

impl NodeMask {
    /// The empty set.
    pub const EMPTY: NodeMask = NodeMask(0);

    /// The set with the given bits (bit `n` is node `n`), as `set_mempolicy` passes it.
    pub const fn from_bits(bits: u64) -> NodeMask {
        NodeMask(bits)
    }

    /// The bits of the set.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Nodes `0..nr_nodes`.
    pub const fn first_n(nr_nodes: usize) -> NodeMask {
        if nr_nodes >= MAX_NUMNODES {
            NodeMask(u64::MAX)
        } else {
            NodeMask((1u64 << nr_nodes) - 1)
        }
    }

    /// The set holding only `node` (empty if `node` is out of range).
    pub const fn single(node: NodeId) -> NodeMask {
        if node.index() < MAX_NUMNODES {
            NodeMask(1u64 << node.0)
        } else {
            NodeMask(0)
        }
    }

    /// Whether `node` is in the set.
    pub const fn contains(self, node: NodeId) -> bool {
        node.index() < MAX_NUMNODES && self.0 & (1u64 << node.0) != 0
    }

    /// Adds `node` (ignored if out of range).
    pub fn insert(&mut self, node: NodeId) {
        self.0 |= NodeMask::single(node).0;
    }

    /// Removes `node`.
    pub fn remove(&mut self, node: NodeId) {
        self.0 &= !NodeMask::single(node).0;
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of nodes in the set.
    pub const fn count(self) -> u32 {
        self.0.count_ones()
    }

    /// The members common to both sets.
    pub const fn intersect(self, other: NodeMask) -> NodeMask {
        NodeMask(self.0 & other.0)
    }

    /// The lowest node in the set.
    pub const fn first(self) -> Option<NodeId> {
        if self.0 == 0 {
            None
        } else {
            Some(NodeId(self.0.trailing_zeros()))
        }
    }

    /// The next member after `prev`, wrapping to the lowest (Linux's `next_node_in`).
    pub fn next_after(self, prev: NodeId) -> Option<NodeId> {
        let shift = prev.0.saturating_add(1);
        let above = if shift as usize >= MAX_NUMNODES {
            0
        } else {
            self.0 >> shift << shift
        };
        if above != 0 {
            Some(NodeId(above.trailing_zeros()))
        } else {
            self.first()
        }
    }

    /// The members, lowest first.
    pub fn iter(self) -> impl Iterator<Item = NodeId> {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let n = rest.trailing_zeros();
            rest &= rest - 1;
            Some(NodeId(n))
        })
    }
}

impl FromIterator<NodeId> for NodeMask {
    fn from_iter<I: IntoIterator<Item = NodeId>>(iter: I) -> NodeMask {
        let mut mask = NodeMask::EMPTY;
        for node in iter {
            mask.insert(node);
        }
        mask
    }
}

/// Linux's list format (`0-2,5`), as in `/sys/devices/system/node/online`.
impl fmt::Display for NodeMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut nodes = self.iter().map(|n| n.0).peekable();
        while let Some(start) = nodes.next() {
            let mut end = start;
            while nodes.peek() == Some(&(end + 1)) {
                end += 1;
                nodes.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for NodeMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeMask({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    #[test]
    fn membership_and_iteration() {
        let mut m = NodeMask::EMPTY;
        m.insert(NodeId(0));
        m.insert(NodeId(3));
        m.insert(NodeId(63));
        m.insert(NodeId(64));
        assert_eq!(m.count(), 3);
        assert!(m.contains(NodeId(3)) && !m.contains(NodeId(1)) && !m.contains(NodeId(64)));
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [NodeId(0), NodeId(3), NodeId(63)]
        );
        m.remove(NodeId(3));
        assert_eq!(m.bits(), 1 | 1 << 63);
        assert_eq!(NodeMask::first_n(64).count(), 64);
        assert_eq!(NodeMask::first_n(2).bits(), 3);
    }

    #[test]
    fn next_after_wraps() {
        let m = NodeMask::from_bits(0b1010_0100);
        assert_eq!(m.next_after(NodeId(2)), Some(NodeId(5)));
        assert_eq!(m.next_after(NodeId(7)), Some(NodeId(2)));
        assert_eq!(m.next_after(NodeId(63)), Some(NodeId(2)));
        assert_eq!(NodeMask::EMPTY.next_after(NodeId(0)), None);
    }

    #[test]
    fn linux_list_format() {
        let m: NodeMask = [0, 1, 2, 5, 7, 8].into_iter().map(NodeId).collect();
        assert_eq!(format!("{m}"), "0-2,5,7-8");
        assert_eq!(format!("{}", NodeMask::EMPTY), "");
    }
}
