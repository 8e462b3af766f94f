//! Splits free physical memory by NUMA node using the SRAT memory ranges. This is the seam
//! where the per-node frame allocators take over.

use super::bootstrap::PhysRange;
use alloc::vec::Vec;
use drivers::acpi::Topology;

/// The free memory of one node.
#[derive(Clone, Debug, Default)]
pub struct NodeMemory {
    /// Node number.
    pub node: u32,
    /// Free ranges on this node.
    pub ranges: Vec<PhysRange>,
    /// Bytes of RAM the SRAT assigns to this node (present at boot).
    pub srat_bytes: u64,
}

impl NodeMemory {
    /// Free bytes on this node.
    pub fn free_bytes(&self) -> u64 {
        self.ranges.iter().map(PhysRange::len).sum()
    }
}

/// Intersects `free` with the SRAT ranges; without SRAT all memory is node 0.
pub fn split_by_node(free: &[PhysRange], topo: &Topology) -> Vec<NodeMemory> {
    let mut nodes: Vec<NodeMemory> = (0..topo.node_count)
        .map(|node| NodeMemory {
            node,
            ..Default::default()
        })
        .collect();
    let srat: Vec<_> = topo
        .memory
        .iter()
        .filter(|m| !m.hot_pluggable && m.length > 0)
        .collect();
    if srat.is_empty() {
        nodes[0].ranges.extend_from_slice(free);
        nodes[0].srat_bytes = free.iter().map(PhysRange::len).sum();
        return nodes;
    }
    for m in &srat {
        if let Some(n) = nodes.get_mut(m.node as usize) {
            n.srat_bytes += m.length;
        }
    }
    for r in free {
        for m in &srat {
            let start = r.start.max(m.base);
            let end = r.end.min(m.base + m.length);
            if start < end {
                if let Some(n) = nodes.get_mut(m.node as usize) {
                    n.ranges.push(PhysRange { start, end });
                }
            }
        }
    }
    nodes
}
