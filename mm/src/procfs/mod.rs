//! `/proc/<pid>/maps`, `smaps`, `numa_maps` and the memory lines of `status`, in Linux's formats,
//! computed from the VMA tree and the page table (under the tree's read lock). The
//! kernel checks PROCESS_QUERY_INFORMATION before calling these.

mod maps;
mod numa_maps;
mod smaps;
mod status;

pub use maps::{maps, maps_batch};
pub use numa_maps::numa_maps_batch;
pub use smaps::{smaps, smaps_batch};
pub use status::{status, MemStatus};

use crate::aspace::MmState;
use crate::errno::MmError;
use crate::pagecache::FileKind;
use crate::pagetable::Pte;
use crate::phys::Frames;
use crate::vma::{Backing, Vma};

/// What a mapped page is, for the RSS counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageClass {
    /// Anonymous memory (including private copies of file pages).
    Anon,
    /// A page-cache page of a regular file.
    File,
    /// A page of shared memory.
    Shmem,
}

/// Classifies the page `pte` maps at `va` in `vma`, with the number of address
/// spaces mapping it (its reference count, less the page cache's own).
pub(crate) fn classify(frames: &Frames, vma: &Vma, va: u64, pte: Pte) -> (PageClass, u32) {
    let refs = frames.count(pte.pfn);
    match &vma.backing {
        Backing::Anon => (PageClass::Anon, refs.max(1)),
        Backing::File(f) => {
            if f.cache().peek(vma.file_index(va)) == Some(pte.pfn) {
                let class = if f.kind() == FileKind::Shmem {
                    PageClass::Shmem
                } else {
                    PageClass::File
                };
                (class, refs.saturating_sub(1).max(1))
            } else {
                (PageClass::Anon, refs.max(1))
            }
        }
    }
}

/// The pathname column of a VMA (`[heap]`, `[stack]`, a file path, `[anon:NAME]`,
/// `[anon_shmem:NAME]`, or empty), in Linux's order of precedence.
pub(crate) fn vma_name(st: &MmState, vma: &Vma) -> Option<alloc::string::String> {
    use alloc::string::String;
    if let Some(f) = vma.file() {
        if let (Some(name), true) = (vma.anon_name(), f.is_anon_shmem()) {
            return Some(alloc::format!("[anon_shmem:{name}]"));
        }
        return Some(f.info().path.clone());
    }
    if is_initial_heap(st, vma) {
        return Some(String::from("[heap]"));
    }
    if is_initial_stack(st, vma) {
        return Some(String::from("[stack]"));
    }
    vma.anon_name().map(|name| alloc::format!("[anon:{name}]"))
}

/// Whether `vma` holds the program break's area (Linux's `vma_is_initial_heap`).
pub(crate) fn is_initial_heap(st: &MmState, vma: &Vma) -> bool {
    st.start_brk != 0 && vma.start <= st.brk && vma.end >= st.start_brk
}

/// Whether `vma` holds the initial stack pointer (Linux's `vma_is_initial_stack`).
pub(crate) fn is_initial_stack(st: &MmState, vma: &Vma) -> bool {
    st.start_stack != 0 && vma.start <= st.start_stack && vma.end >= st.start_stack
}

/// Runs `render` on at most `max_vmas` VMAs from the first one ending above `from`;
/// returns the end of the last one rendered if more follow, `None` after the last VMA.
pub(crate) fn batch(
    st: &MmState,
    from: u64,
    max_vmas: usize,
    mut render: impl FnMut(&Vma) -> Result<(), MmError>,
) -> Result<Option<u64>, MmError> {
    let mut vmas = st.tree.overlapping(from, u64::MAX).peekable();
    let mut n = 0;
    while let Some(vma) = vmas.next() {
        render(vma)?;
        n += 1;
        if n == max_vmas {
            return Ok(vmas.peek().map(|_| vma.end));
        }
    }
    Ok(None)
}
