//! NUMA memory policy and migration: set_mempolicy, get_mempolicy, mbind, move_pages
//! and migrate_pages over `mm`'s policies and page migration.
//!
//! Gates: moving pages other processes also map (`MPOL_MF_MOVE_ALL`) needs
//! SeIncreaseBasePriorityPrivilege (Linux's `CAP_SYS_NICE`); acting on another
//! process needs `PROCESS_VM_OPERATION` in its security descriptor (with PIP
//! dominance, in the one access check) to move its pages, and
//! `PROCESS_QUERY_INFORMATION` to ask where they are; refusals are `EPERM`, as
//! Linux's ptrace-mode check answers.

use crate::mem::aspace::{AddressSpace, MmSpace};
use crate::{
    arch::uaccess::{read_user, write_user},
    proc::{self, thread::Thread, Process},
};
use alloc::{sync::Arc, vec::Vec};
use errno::{Errno, SysResult};
use mm::aspace::{MemPolicy, PageStatus};
use mm::frame::{NodeId, NodeMask};
use security::{AccessMask, Privilege};

/// `MPOL_F_NODE`, `MPOL_F_ADDR`, `MPOL_F_MEMS_ALLOWED`.
const MPOL_F_NODE: u64 = 1;
const MPOL_F_ADDR: u64 = 2;
const MPOL_F_MEMS_ALLOWED: u64 = 4;
/// `MPOL_MF_STRICT`, `MPOL_MF_MOVE`, `MPOL_MF_MOVE_ALL`.
const MPOL_MF_STRICT: u64 = 1;
const MPOL_MF_MOVE: u64 = 2;
const MPOL_MF_MOVE_ALL: u64 = 4;
/// The most bits of a user node mask (Linux: a page of bits).
const MAX_MASK_BITS: u64 = 4096 * 8;
/// `move_pages` handles at most this many pages per round of copies.
const MOVE_BATCH: u64 = 256;

/// The nodes with memory.
fn online_nodes() -> NodeMask {
    NodeMask::first_n(crate::mem::frames::allocator().nr_nodes())
}

/// Linux's `nr_node_ids`.
fn nr_node_ids() -> u64 {
    crate::mem::frames::allocator().nr_nodes() as u64
}

/// Reads a user node mask of `maxnode - 1` bits (Linux's `get_nodes`): `EINVAL` past
/// a page of bits or for a node this kernel cannot have (bit 64 and up).
fn read_nodes(nmask: u64, maxnode: u64) -> SysResult<NodeMask> {
    let bits = maxnode.saturating_sub(1);
    if bits > MAX_MASK_BITS {
        return Err(Errno::EINVAL);
    }
    if bits == 0 || nmask == 0 {
        return Ok(NodeMask::EMPTY);
    }
    let words = bits.div_ceil(64);
    let mut first: u64 = read_user(nmask)?;
    if bits < 64 {
        first &= (1u64 << bits) - 1;
    }
    for i in 1..words {
        let mut w: u64 = read_user(nmask + i * 8)?;
        if i == words - 1 && !bits.is_multiple_of(64) {
            w &= (1u64 << (bits % 64)) - 1;
        }
        if w != 0 {
            return Err(Errno::EINVAL);
        }
    }
    Ok(NodeMask::from_bits(first))
}

/// Writes `nodes` as a user mask of `maxnode - 1` bits (Linux's `copy_nodes_to_user`).
fn write_nodes(nmask: u64, maxnode: u64, nodes: NodeMask) -> SysResult<()> {
    let words = maxnode.saturating_sub(1).div_ceil(64);
    for i in 0..words.min(MAX_MASK_BITS / 64) {
        let w = if i == 0 { nodes.bits() } else { 0 };
        write_user(nmask + i * 8, &w)?;
    }
    Ok(())
}

fn decode(mode: u64, nmask: u64, maxnode: u64) -> SysResult<Option<MemPolicy>> {
    let nodes = read_nodes(nmask, maxnode)?;
    Ok(MemPolicy::decode(
        mode & 0xffff_ffff,
        nodes,
        online_nodes(),
    )?)
}

/// Every process's address space but `space` (each once: `CLONE_VM` processes share
/// one), for `MPOL_MF_MOVE_ALL`.
fn other_spaces(space: &Arc<AddressSpace>) -> Vec<Arc<AddressSpace>> {
    let mut others = crate::proc::address_spaces();
    others.retain(|s| !Arc::ptr_eq(s, space));
    others
}

fn mm_refs(spaces: &[Arc<AddressSpace>]) -> Vec<&MmSpace> {
    spaces.iter().map(|s| s.mm()).collect()
}

fn may_move_all(thread: &Thread) -> bool {
    thread
        .process
        .token
        .read()
        .has_privilege(Privilege::SeIncreaseBasePriorityPrivilege)
}

/// The process a pid argument names (0: the caller), checked for `want`.
fn target(thread: &Thread, pid: u64, want: AccessMask) -> SysResult<Arc<Process>> {
    let pid = i64::from(pid as i32);
    let process = if pid == 0 || pid == i64::from(thread.process.pid) {
        thread.process.clone()
    } else if pid < 0 {
        return Err(Errno::ESRCH);
    } else {
        proc::process_by_id(pid as u64)?
    };
    proc::check_access(&thread.process, &process, want)?;
    Ok(process)
}

/// `set_mempolicy(mode, nmask, maxnode)`: the calling thread's policy. The main
/// thread's is also kept in the address space, for `numa_maps` (and for faults taken
/// outside any thread).
pub fn set_mempolicy(thread: &Thread, mode: u64, nmask: u64, maxnode: u64) -> SysResult {
    let policy = decode(mode, nmask, maxnode)?;
    *thread.mempolicy.lock() = policy;
    if thread.tid == thread.process.pid {
        thread.process.address_space().mm().set_task_policy(policy);
    }
    Ok(0)
}

/// The fault path's question: the current thread's policy (installed at boot).
pub fn current_thread_policy() -> Option<Option<MemPolicy>> {
    proc::current_thread().map(|t| *t.mempolicy.lock())
}

/// `get_mempolicy(policy, nmask, maxnode, addr, flags)`.
pub fn get_mempolicy(
    thread: &Thread,
    policy_out: u64,
    nmask: u64,
    maxnode: u64,
    addr: u64,
    flags: u64,
) -> SysResult {
    if flags & !(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED) != 0 {
        return Err(Errno::EINVAL);
    }
    if nmask != 0 && maxnode < nr_node_ids() {
        return Err(Errno::EINVAL);
    }
    let space = thread.process.address_space();
    let mm = space.mm();
    if flags & MPOL_F_MEMS_ALLOWED != 0 {
        if flags & (MPOL_F_NODE | MPOL_F_ADDR) != 0 {
            return Err(Errno::EINVAL);
        }
        if policy_out != 0 {
            write_user(policy_out, &0i32)?;
        }
        if nmask != 0 {
            write_nodes(nmask, maxnode, online_nodes())?;
        }
        return Ok(0);
    }
    let policy = if flags & MPOL_F_ADDR != 0 {
        mm.vma_policy(addr)?
    } else if addr != 0 {
        return Err(Errno::EINVAL);
    } else {
        *thread.mempolicy.lock()
    };
    let mode = if flags & MPOL_F_NODE != 0 {
        if flags & MPOL_F_ADDR != 0 {
            // The node of the page there, faulted in as a read would.
            let page = addr & !4095;
            let mut byte = [0u8; 1];
            mm.read_bytes(page, &mut byte).map_err(|_| Errno::EFAULT)?;
            match mm.page_node(page) {
                PageStatus::Node(n) => u64::from(n.0),
                _ => return Err(Errno::EFAULT),
            }
        } else {
            match policy {
                Some(p) if matches!(p.mode, mm::aspace::PolicyMode::Interleave) => {
                    p.interleave_node(0).map_or(0, |n| u64::from(n.0))
                }
                _ => return Err(Errno::EINVAL),
            }
        }
    } else {
        policy.map_or(0, |p| p.linux_mode())
    };
    if policy_out != 0 {
        write_user(policy_out, &(mode as i32))?;
    }
    if nmask != 0 {
        write_nodes(nmask, maxnode, policy.map_or(NodeMask::EMPTY, |p| p.nodes))?;
    }
    Ok(0)
}

/// `mbind(start, len, mode, nmask, maxnode, flags)`.
pub fn mbind(
    thread: &Thread,
    start: u64,
    len: u64,
    mode: u64,
    nmask: u64,
    maxnode: u64,
    flags: u64,
) -> SysResult {
    if flags & !(MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MPOL_MF_MOVE_ALL != 0 && !may_move_all(thread) {
        return Err(Errno::EPERM);
    }
    if start & 4095 != 0 {
        return Err(Errno::EINVAL);
    }
    let policy = decode(mode, nmask, maxnode)?;
    let space = thread.process.address_space();
    let mm = space.mm();
    mm.set_range_policy(start, len, policy)?;
    let end = start.saturating_add(len.saturating_add(4095) & !4095);
    let strict = flags & MPOL_MF_STRICT != 0 && policy.is_some();
    if flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0 {
        let left = if flags & MPOL_MF_MOVE_ALL != 0 {
            let others = other_spaces(&space);
            mm.migrate_misplaced(start, end, true, &mm_refs(&others))
        } else {
            mm.migrate_misplaced(start, end, false, &[])
        };
        if strict && left > 0 {
            return Err(Errno::EIO);
        }
    } else if strict && misplaced(mm, start, end, policy) {
        return Err(Errno::EIO);
    }
    Ok(0)
}

/// Whether a resident page of `[start, end)` sits where `policy` would not put it.
fn misplaced(
    mm: &crate::mem::aspace::MmSpace,
    start: u64,
    end: u64,
    policy: Option<MemPolicy>,
) -> bool {
    let Some(policy) = policy else { return false };
    let mut va = start;
    while va < end {
        if let PageStatus::Node(n) = mm.page_node(va) {
            let index = mm
                .vma_at(va)
                .map_or(0, |v| v.pgoff() + (va - v.start()) / 4096);
            if !policy.allows(n, index) {
                return true;
            }
        }
        va += 4096;
    }
    false
}

/// `move_pages(pid, count, pages, nodes, status, flags)`: with `nodes` NULL, where
/// each page is; otherwise each page moves to its node. Returns 0.
#[allow(clippy::too_many_arguments)]
pub fn move_pages(
    thread: &Thread,
    pid: u64,
    count: u64,
    pages: u64,
    nodes: u64,
    status: u64,
    flags: u64,
) -> SysResult {
    if flags & !(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0 {
        return Err(Errno::EINVAL);
    }
    let move_all = flags & MPOL_MF_MOVE_ALL != 0;
    if move_all && !may_move_all(thread) {
        return Err(Errno::EPERM);
    }
    let want = if nodes == 0 {
        AccessMask::PROCESS_QUERY_INFORMATION
    } else {
        AccessMask::PROCESS_VM_OPERATION
    };
    let process = target(thread, pid, want)?;
    let space = process.address_space();
    let mm = space.mm();
    let online = online_nodes();
    if count > (1 << 31) {
        return Err(Errno::EINVAL);
    }
    // MOVE_ALL moves a frame other processes map too (copy-on-write since fork, a
    // page-cache page, a KSM page) for all of them: there is no reverse map, so their
    // address spaces are searched for the mappings.
    let others = if move_all && nodes != 0 {
        other_spaces(&space)
    } else {
        Vec::new()
    };
    let sharers = mm_refs(&others);
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(MOVE_BATCH);
        for i in done..done + n {
            let va: u64 = read_user(pages + i * 8)?;
            let result = if nodes == 0 {
                mm.page_node(va)
            } else {
                let node: i32 = read_user(nodes + i * 4)?;
                if node < 0 || !online.contains(NodeId(node as u32)) {
                    return Err(Errno::ENODEV);
                }
                if move_all {
                    mm.migrate_page_among(va, NodeId(node as u32), &sharers)
                } else {
                    mm.migrate_page(va, NodeId(node as u32), false)
                }
            };
            write_user(status + i * 4, &result.as_status())?;
        }
        done += n;
    }
    Ok(0)
}

/// `migrate_pages(pid, maxnode, old_nodes, new_nodes)`: every page of the process on
/// an old node moves to the matching new one; pages other processes map too only for
/// a caller who may use `MPOL_MF_MOVE_ALL` (Linux: with `CAP_SYS_NICE`). Returns the
/// pages that could not move.
pub fn migrate_pages(
    thread: &Thread,
    pid: u64,
    maxnode: u64,
    old_nodes: u64,
    new_nodes: u64,
) -> SysResult {
    let old = read_nodes(old_nodes, maxnode)?;
    let new = read_nodes(new_nodes, maxnode)?;
    let process = target(thread, pid, AccessMask::PROCESS_VM_OPERATION)?;
    let online = online_nodes();
    if new.intersect(online) != new {
        return Err(Errno::EINVAL);
    }
    let space = process.address_space();
    let from = old.intersect(online);
    if may_move_all(thread) {
        let others = other_spaces(&space);
        Ok(space
            .mm()
            .migrate_nodes_among(from, new, true, &mm_refs(&others)))
    } else {
        Ok(space.mm().migrate_nodes(from, new))
    }
}
