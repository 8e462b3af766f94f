//! Per-process file descriptors: slots holding shared open file descriptions
//! (`crate::vfs::OpenFile`), each with its close-on-exec flag.

use crate::vfs::{console::Console, OpenFile};
use alloc::{sync::Arc, vec::Vec};
use errno::{Errno, SysResult};

/// Most descriptors a process may hold.
pub const MAX_FDS: usize = 1024;

/// One descriptor slot.
#[derive(Clone)]
pub struct Descriptor {
    /// The open file description (shared after `dup` and `fork`).
    pub file: Arc<OpenFile>,
    /// `O_CLOEXEC`.
    pub cloexec: bool,
}

/// A process's descriptor table.
#[derive(Clone, Default)]
pub struct FileTable {
    slots: Vec<Option<Descriptor>>,
}

impl FileTable {
    /// A table with stdin, stdout and stderr on the console (one description, read
    /// and write, as a terminal opened once and duplicated).
    pub fn with_console() -> Self {
        let console = OpenFile::new(Arc::new(Console), crate::vfs::flags::O_RDWR, None);
        let slot = Some(Descriptor {
            file: console,
            cloexec: false,
        });
        Self {
            slots: alloc::vec![slot.clone(), slot.clone(), slot],
        }
    }

    /// Makes the table at least `len` slots long; ENOMEM (as Linux's `expand_files`)
    /// when the heap cannot hold them.
    fn grow_to(&mut self, len: usize) -> SysResult<()> {
        if let Some(more) = len.checked_sub(self.slots.len()).filter(|&n| n > 0) {
            crate::mem::kbuf::reserve(&mut self.slots, more)?;
            self.slots.resize(len, None);
        }
        Ok(())
    }

    /// Installs `file` at the lowest free descriptor.
    pub fn insert(&mut self, file: Arc<OpenFile>, cloexec: bool) -> SysResult<u64> {
        self.insert_from(0, file, cloexec)
    }

    /// Installs `file` at the lowest free descriptor at or above `min` (`F_DUPFD`).
    pub fn insert_from(
        &mut self,
        min: usize,
        file: Arc<OpenFile>,
        cloexec: bool,
    ) -> SysResult<u64> {
        if min >= MAX_FDS {
            return Err(Errno::EINVAL);
        }
        let slot = Some(Descriptor { file, cloexec });
        if let Some(i) = self.slots.iter().skip(min).position(Option::is_none) {
            self.slots[min + i] = slot;
            return Ok((min + i) as u64);
        }
        let at = self.slots.len().max(min);
        if at >= MAX_FDS {
            return Err(Errno::EMFILE);
        }
        self.grow_to(at + 1)?;
        self.slots[at] = slot;
        Ok(at as u64)
    }

    /// Puts `file` at descriptor `fd` (closing what was there): `dup2`/`dup3`. The old
    /// description is returned, to be dropped after the table's lock.
    pub fn install_at(
        &mut self,
        fd: u64,
        file: Arc<OpenFile>,
        cloexec: bool,
    ) -> SysResult<Option<Descriptor>> {
        let i = usize::try_from(fd)
            .ok()
            .filter(|&i| i < MAX_FDS)
            .ok_or(Errno::EBADF)?;
        self.grow_to(i + 1)?;
        Ok(self.slots[i].replace(Descriptor { file, cloexec }))
    }

    /// The descriptor `fd`.
    pub fn get_mut(&mut self, fd: u64) -> SysResult<&mut Descriptor> {
        self.slots
            .get_mut(usize::try_from(fd).map_err(|_| Errno::EBADF)?)
            .and_then(Option::as_mut)
            .ok_or(Errno::EBADF)
    }

    /// The open file description at `fd`.
    pub fn get(&self, fd: u64) -> SysResult<Arc<OpenFile>> {
        self.slots
            .get(usize::try_from(fd).map_err(|_| Errno::EBADF)?)
            .and_then(Option::as_ref)
            .map(|d| d.file.clone())
            .ok_or(Errno::EBADF)
    }

    /// Closes `fd`; returns its descriptor, to be dropped after the table's lock (the
    /// last close of a pipe end wakes the other end).
    pub fn close(&mut self, fd: u64) -> SysResult<Descriptor> {
        let slot = self
            .slots
            .get_mut(usize::try_from(fd).map_err(|_| Errno::EBADF)?)
            .ok_or(Errno::EBADF)?;
        slot.take().ok_or(Errno::EBADF)
    }

    /// Closes every descriptor in `first..=last` (`close_range`), or marks them
    /// close-on-exec when `cloexec_only`; returns the closed ones.
    pub fn close_range(
        &mut self,
        first: usize,
        last: usize,
        cloexec_only: bool,
    ) -> Vec<Descriptor> {
        let mut closed = Vec::new();
        let end = last.min(self.slots.len().saturating_sub(1));
        for slot in self.slots.iter_mut().take(end + 1).skip(first) {
            if cloexec_only {
                if let Some(d) = slot.as_mut() {
                    d.cloexec = true;
                }
            } else if let Some(d) = slot.take() {
                closed.push(d);
            }
        }
        closed
    }

    /// Every open descriptor with its description, in order (`/proc/<pid>/fd`).
    pub fn open_fds(&self) -> Vec<(u64, Arc<OpenFile>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, d)| Some((i as u64, d.as_ref()?.file.clone())))
            .collect()
    }

    /// Duplicates `fd` to the lowest free slot (`dup`).
    pub fn dup(&mut self, fd: u64) -> SysResult<u64> {
        let file = self.get(fd)?;
        self.insert(file, false)
    }

    /// exec: closes every `O_CLOEXEC` descriptor.
    pub fn close_on_exec(&mut self) {
        for slot in self.slots.iter_mut() {
            if slot.as_ref().is_some_and(|d| d.cloexec) {
                *slot = None;
            }
        }
    }

    /// Exit: closes everything.
    pub fn close_all(&mut self) {
        self.slots.clear();
    }
}
