//! `/proc/<pid>/numa_maps`: per VMA its start, the policy, the resident pages by kind
//! and by node, and the page size.

use alloc::string::String;
use core::fmt::Write;

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
        aspace.page_table().scan(v.start, v.end, &mut |_, pte| {
            if let Some(node) = node_of(pte.pfn) {
                per_node[node as usize % MAX_NODES] += 1;
            }
        });
        let _ = write!(out, "{:08x} default", v.start);
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
    }
}
