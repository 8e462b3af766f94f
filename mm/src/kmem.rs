//! Kernel memory admission: the seam through which the kernel tells mm that its own
//! heap is close to its cap, so that growth of kernel state a process asks for (more
//! VMAs, a forked VMA tree) is refused with `ENOMEM` instead of exhausting the heap
//! and panicking an allocation the kernel cannot refuse.
//!
//! The kernel installs its hook once at boot ([`set_short_hook`]); without one (host
//! crates) kernel memory is never short. mm's unit tests can pretend it is, per thread.

/// The installed hook, if any.
static HOOK: spin::Once<fn() -> bool> = spin::Once::new();

/// Installs `hook` as the answer to "is kernel memory short?". It must be cheap (it is
/// asked on every VMA-count growth) and callable wherever mm changes a VMA tree. Only
/// the first call takes effect.
pub fn set_short_hook(hook: fn() -> bool) {
    HOOK.call_once(|| hook);
}

/// Whether growth of process-driven kernel state should be refused now.
pub(crate) fn short() -> bool {
    #[cfg(test)]
    if tests::PRETEND_SHORT.with(|p| p.get()) {
        return true;
    }
    HOOK.get().is_some_and(|hook| hook())
}

#[cfg(test)]
pub(crate) mod tests {
    std::thread_local! {
        /// Set by a test: this thread sees kernel memory as short.
        pub(crate) static PRETEND_SHORT: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
    }

    use crate::aspace::tests::{anon_rw, harness};
    use crate::errno::MmError;
    use crate::frame::PAGE_SIZE;
    use crate::vma::Prot;

    #[test]
    fn short_kernel_memory_refuses_new_vmas_and_fork_but_not_shrinking() {
        let h = harness();
        let a = anon_rw(&h.aspace, 4);
        let before = h.aspace.vmas().len();
        PRETEND_SHORT.with(|p| p.set(true));
        // A split would add a VMA.
        let split = h.aspace.mprotect(a + PAGE_SIZE, PAGE_SIZE, Prot::READ);
        // Unmapping the whole mapping removes one.
        let unmap = h.aspace.munmap(a, 4 * PAGE_SIZE);
        PRETEND_SHORT.with(|p| p.set(false));
        assert_eq!(split, Err(MmError::NoMemory));
        assert_eq!(unmap, Ok(()));
        assert_eq!(h.aspace.vmas().len(), before - 1);
    }
}
