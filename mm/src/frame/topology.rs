//! The machine's memory topology as the allocator sees it: which frames belong to
//! which node (memory map intersected with SRAT), SLIT distances, the CPU-to-node
//! map, and the distance-ordered fallback list of every node.

use alloc::vec::Vec;

use sched::{CpuId, MAX_CPUS};

use super::buddy::MAX_NODE_SPAN;
use super::error::TopologyError;
use super::types::{NodeId, Order, Pfn, MAX_NUMNODES, PAGE_SIZE};

/// Linux's `LOCAL_DISTANCE`: a node's distance to itself.
pub const LOCAL_DISTANCE: u8 = 10;
/// Linux's `REMOTE_DISTANCE`: the default distance between two nodes without a SLIT.
pub const REMOTE_DISTANCE: u8 = 20;

/// One usable physical range on one node, in bytes (`phys_end` exclusive). Partial
/// pages at either end are dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRange {
    /// The node the SRAT assigns this range to.
    pub node: NodeId,
    /// First byte of the range.
    pub phys_start: u64,
    /// One past the last byte of the range.
    pub phys_end: u64,
}

/// The SLIT: `distance(a, b)` for every pair of nodes, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistanceMatrix {
    nr_nodes: usize,
    distances: Vec<u8>,
}

impl DistanceMatrix {
    /// A matrix for `nr_nodes` nodes from `distances` (row `a`, column `b` at `a * nr_nodes + b`).
    pub fn new(nr_nodes: usize, distances: Vec<u8>) -> Result<DistanceMatrix, TopologyError> {
        if nr_nodes == 0 || nr_nodes > MAX_NUMNODES || distances.len() != nr_nodes * nr_nodes {
            return Err(TopologyError::BadDistanceMatrix);
        }
        Ok(DistanceMatrix {
            nr_nodes,
            distances,
        })
    }

    /// Linux's default without a SLIT: [`LOCAL_DISTANCE`] on the diagonal, [`REMOTE_DISTANCE`] elsewhere.
    pub fn uniform(nr_nodes: usize) -> Result<DistanceMatrix, TopologyError> {
        let distances = (0..nr_nodes * nr_nodes)
            .map(|i| {
                if i / nr_nodes == i % nr_nodes {
                    LOCAL_DISTANCE
                } else {
                    REMOTE_DISTANCE
                }
            })
            .collect();
        DistanceMatrix::new(nr_nodes, distances)
    }

    /// Number of nodes.
    pub fn nr_nodes(&self) -> usize {
        self.nr_nodes
    }

    /// The SLIT distance from `from` to `to` (255, "unreachable", for unknown nodes).
    pub fn distance(&self, from: NodeId, to: NodeId) -> u8 {
        if from.index() >= self.nr_nodes || to.index() >= self.nr_nodes {
            return u8::MAX;
        }
        self.distances[from.index() * self.nr_nodes + to.index()]
    }
}

/// The validated topology the allocator runs on.
pub(crate) struct Topology {
    /// Every node's ranges as `(start, end, node)` PFNs, sorted by start, for lookups.
    ranges: Vec<(Pfn, Pfn, NodeId)>,
    /// Each node's ranges, sorted and merged.
    node_ranges: Vec<Vec<(Pfn, Pfn)>>,
    /// For each node, the nodes with memory sorted by distance from it, ties by node id.
    fallback: Vec<Vec<NodeId>>,
    /// Each CPU's node.
    cpu_node: Vec<NodeId>,
    /// Each CPU's nearest node with memory (its own unless it is memoryless).
    cpu_mem_node: Vec<NodeId>,
    /// The SLIT.
    distances: DistanceMatrix,
}

impl Topology {
    /// Validates and indexes `ranges`, `distances` and `cpu_nodes` (`cpu_nodes[i]` is CPU `i`'s node).
    pub(crate) fn new(
        ranges: &[NodeRange],
        distances: DistanceMatrix,
        cpu_nodes: &[NodeId],
    ) -> Result<Topology, TopologyError> {
        let nr_nodes = distances.nr_nodes();
        if cpu_nodes.len() > MAX_CPUS {
            return Err(TopologyError::TooManyCpus);
        }
        for (cpu, node) in cpu_nodes.iter().enumerate() {
            if node.index() >= nr_nodes {
                return Err(TopologyError::UnknownCpuNode(cpu as u32, *node));
            }
        }
        let mut sorted = Vec::with_capacity(ranges.len());
        for r in ranges {
            if r.node.index() >= nr_nodes {
                return Err(TopologyError::UnknownNode(r.node));
            }
            let start = r.phys_start.div_ceil(PAGE_SIZE);
            let end = r.phys_end / PAGE_SIZE;
            if start < end {
                sorted.push((Pfn(start), Pfn(end), r.node));
            }
        }
        sorted.sort_unstable_by_key(|r| r.0);
        let mut merged: Vec<(Pfn, Pfn, NodeId)> = Vec::with_capacity(sorted.len());
        for r in sorted {
            match merged.last_mut() {
                Some(last) if r.0 < last.1 => return Err(TopologyError::Overlap(r.0)),
                Some(last) if r.0 == last.1 && r.2 == last.2 => last.1 = r.1,
                _ => merged.push(r),
            }
        }
        if merged.is_empty() {
            return Err(TopologyError::NoMemory);
        }
        let mut node_ranges = alloc::vec![Vec::new(); nr_nodes];
        for &(start, end, node) in &merged {
            node_ranges[node.index()].push((start, end));
        }
        for (n, list) in node_ranges.iter().enumerate() {
            if let (Some(first), Some(last)) = (list.first(), list.last()) {
                let base = first.0 .0 & !(Order::HUGE_1G.pages() - 1);
                if last.1 .0 - base >= MAX_NODE_SPAN {
                    return Err(TopologyError::NodeTooLarge(NodeId(n as u32)));
                }
            }
        }
        let fallback = (0..nr_nodes)
            .map(|from| {
                let from = NodeId(from as u32);
                let mut order: Vec<NodeId> = (0..nr_nodes as u32)
                    .map(NodeId)
                    .filter(|n| !node_ranges[n.index()].is_empty())
                    .collect();
                order.sort_by_key(|&to| (distances.distance(from, to), to));
                order
            })
            .collect::<Vec<_>>();
        let cpu_mem_node = cpu_nodes
            .iter()
            .map(|n| fallback[n.index()].first().copied().unwrap_or(*n))
            .collect();
        Ok(Topology {
            ranges: merged,
            node_ranges,
            fallback,
            cpu_node: cpu_nodes.to_vec(),
            cpu_mem_node,
            distances,
        })
    }

    /// Number of nodes (with or without memory).
    pub(crate) fn nr_nodes(&self) -> usize {
        self.node_ranges.len()
    }

    /// Number of CPUs.
    pub(crate) fn nr_cpus(&self) -> usize {
        self.cpu_node.len()
    }

    /// The node owning `pfn`, or `None` if no range holds it.
    #[inline]
    pub(crate) fn node_of(&self, pfn: Pfn) -> Option<NodeId> {
        let i = self.ranges.partition_point(|r| r.0 <= pfn);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (pfn < r.1).then_some(r.2)
    }

    /// Node `node`'s sorted, merged ranges.
    pub(crate) fn node_ranges(&self, node: NodeId) -> &[(Pfn, Pfn)] {
        &self.node_ranges[node.index()]
    }

    /// Nodes with memory, nearest to `node` first (ties by node id).
    pub(crate) fn fallback(&self, node: NodeId) -> &[NodeId] {
        &self.fallback[node.index()]
    }

    /// CPU `cpu`'s node.
    pub(crate) fn cpu_node(&self, cpu: CpuId) -> Option<NodeId> {
        self.cpu_node.get(cpu.index()).copied()
    }

    /// The node CPU `cpu` allocates local memory from: its own, or the nearest with memory.
    pub(crate) fn cpu_mem_node(&self, cpu: CpuId) -> Option<NodeId> {
        self.cpu_mem_node.get(cpu.index()).copied()
    }

    /// The SLIT.
    pub(crate) fn distances(&self) -> &DistanceMatrix {
        &self.distances
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn r(node: u32, start: u64, end: u64) -> NodeRange {
        NodeRange {
            node: NodeId(node),
            phys_start: start,
            phys_end: end,
        }
    }

    #[test]
    fn ranges_are_rounded_merged_and_looked_up() {
        let t = Topology::new(
            &[
                r(1, 0x10_0000, 0x20_0000),
                r(0, 0x1001, 0x8000),
                r(0, 0x8000, 0x9fff),
            ],
            DistanceMatrix::uniform(2).unwrap(),
            &[NodeId(0), NodeId(1)],
        )
        .unwrap();
        assert_eq!(t.node_ranges(NodeId(0)), [(Pfn(2), Pfn(9))]);
        assert_eq!(t.node_of(Pfn(1)), None);
        assert_eq!(t.node_of(Pfn(2)), Some(NodeId(0)));
        assert_eq!(t.node_of(Pfn(9)), None);
        assert_eq!(t.node_of(Pfn(0x100)), Some(NodeId(1)));
        assert_eq!(t.node_of(Pfn(0x200)), None);
    }

    #[test]
    fn fallback_is_by_distance_then_id_and_skips_memoryless() {
        #[rustfmt::skip]
        let d = DistanceMatrix::new(4, vec![
            10, 30, 20, 20,
            30, 10, 20, 20,
            20, 20, 10, 30,
            20, 20, 30, 10,
        ]).unwrap();
        let t = Topology::new(
            &[
                r(0, 0, 1 << 20),
                r(1, 1 << 20, 2 << 20),
                r(3, 3 << 20, 4 << 20),
            ],
            d,
            &[NodeId(0), NodeId(2)],
        )
        .unwrap();
        assert_eq!(t.fallback(NodeId(0)), [NodeId(0), NodeId(3), NodeId(1)]);
        assert_eq!(t.fallback(NodeId(2)), [NodeId(0), NodeId(1), NodeId(3)]);
        assert_eq!(t.cpu_mem_node(CpuId(1)), Some(NodeId(0)));
        assert_eq!(t.cpu_node(CpuId(1)), Some(NodeId(2)));
    }

    #[test]
    fn bad_topologies_are_refused() {
        let d = || DistanceMatrix::uniform(2).unwrap();
        assert_eq!(
            DistanceMatrix::new(2, vec![10; 3]),
            Err(TopologyError::BadDistanceMatrix)
        );
        assert_eq!(
            Topology::new(&[r(2, 0, 4096)], d(), &[]).err(),
            Some(TopologyError::UnknownNode(NodeId(2)))
        );
        assert_eq!(
            Topology::new(&[r(0, 0, 8192), r(1, 4096, 16384)], d(), &[]).err(),
            Some(TopologyError::Overlap(Pfn(1)))
        );
        assert_eq!(
            Topology::new(&[r(0, 0, 100)], d(), &[]).err(),
            Some(TopologyError::NoMemory)
        );
        assert_eq!(
            Topology::new(&[r(0, 0, 4096)], d(), &[NodeId(5)]).err(),
            Some(TopologyError::UnknownCpuNode(0, NodeId(5)))
        );
    }
}
