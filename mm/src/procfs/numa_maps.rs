//! `/proc/<pid>/numa_maps`: per VMA its start, the policy, the resident pages by kind
//! and by node, and the page size.

use alloc::string::String;
use core::fmt::Write;

use crate::addr::VirtAddr;
use crate::aspace::AddressSpace;
use crate::errno::MmError;
use crate::frame::Pfn;
use crate::pagetable::PageTable;

/// Most nodes counted (a page on a higher node counts as node `n % MAX_NODES`).
const MAX_NODES: usize = 64;
/// Room reserved before each line.
const LINE_BYTES: usize = 128;

/// Like [`maps_batch`](super::maps_batch), for numa_maps lines; `node_of` says which
/// node a frame is on.
pub fn numa_maps_batch<P: PageTable>(
    aspace: &AddressSpace<P>,
    from: u64,
    max_vmas: usize,
    out: &mut String,
    node_of: &dyn Fn(Pfn) -> Option<u32>,
) -> Result<Option<u64>, MmError> {
    let st = aspace.state().read();
    super::batch(&st, from, max_vmas, |v| {
        out.try_reserve(LINE_BYTES).map_err(|_| MmError::NoMemory)?;
        let mut per_node = [0u64; MAX_NODES];
        aspace.page_table().scan(
            VirtAddr::new(v.start),
            VirtAddr::new(v.end),
            &mut |_, pte| {
                if let Some(node) = node_of(pte.pfn) {
                    per_node[node as usize % MAX_NODES] += 1;
                }
            },
        );
        let _ = write!(out, "{:08x} ", v.start);
        policy_text(out, aspace.policy_for(v));
        let total: u64 = per_node.iter().sum();
        if total > 0 {
            let kind = if v.file().is_some() { "mapped" } else { "anon" };
            let _ = write!(out, " {kind}={total}");
        }
        for (node, n) in per_node.iter().enumerate().filter(|(_, n)| **n > 0) {
            let _ = write!(out, " N{node}={n}");
        }
        let _ = writeln!(out, " kernelpagesize_kB=4");
        Ok(())
    })
}

/// Linux's `mpol_to_str`: `default`, `local`, or the mode, `=static`/`=relative`, and
/// `:` with the node list (`0-1`, `0,2`).
fn policy_text(out: &mut String, policy: Option<crate::aspace::MemPolicy>) {
    use crate::aspace::mempolicy::{MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES};
    let Some(p) = policy else {
        out.push_str("default");
        return;
    };
    out.push_str(p.mode.name());
    if p.flags & MPOL_F_STATIC_NODES != 0 {
        out.push_str("=static");
    } else if p.flags & MPOL_F_RELATIVE_NODES != 0 {
        out.push_str("=relative");
    }
    if p.nodes.is_empty() {
        return;
    }
    out.push(':');
    let nodes: alloc::vec::Vec<u32> = p.nodes.iter().map(|n| n.0).collect();
    let mut i = 0;
    let mut first = true;
    while i < nodes.len() {
        let mut j = i;
        while j + 1 < nodes.len() && nodes[j + 1] == nodes[j] + 1 {
            j += 1;
        }
        if !first {
            out.push(',');
        }
        first = false;
        if j > i {
            let _ = write!(out, "{}-{}", nodes[i], nodes[j]);
        } else {
            let _ = write!(out, "{}", nodes[i]);
        }
        i = j + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aspace::tests::{anon_rw, harness};

    #[test]
    fn counts_resident_pages_by_node() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        h.aspace.write_bytes(a, &[1u8; 3 * 4096]).unwrap();
        let mut out = String::new();
        let next =
            numa_maps_batch(&h.aspace, 0, 8, &mut out, &|pfn| Some((pfn.0 % 2) as u32)).unwrap();
        assert_eq!(next, None);
        assert!(
            out.starts_with(&std::format!("{a:08x} default anon=3 N")),
            "{out}"
        );
        assert!(out.ends_with(" kernelpagesize_kB=4\n"), "{out}");
        let il = crate::aspace::MemPolicy::decode(
            3,
            crate::frame::NodeMask::from_bits(0b111),
            crate::frame::NodeMask::from_bits(0b1011),
        )
        .unwrap();
        h.aspace.set_range_policy(a, 4096, il).unwrap();
        let mut out = String::new();
        numa_maps_batch(&h.aspace, 0, 8, &mut out, &|_| Some(1)).unwrap();
        assert!(
            out.starts_with(&std::format!("{a:08x} interleave:0-1 anon=1 N1=1")),
            "{out}"
        );
        let mut s = String::new();
        policy_text(
            &mut s,
            crate::aspace::MemPolicy::decode(
                2,
                crate::frame::NodeMask::from_bits(0b1101),
                crate::frame::NodeMask::from_bits(0b1111),
            )
            .unwrap(),
        );
        assert_eq!(s, "bind:0,2-3");
    }
}
