//! Per-process file descriptors: the console (fds 0-2 at start) and read-only initramfs
//! files; `/proc` text files are generated at open, the per-VMA ones as they are read.

use alloc::{borrow::Cow, vec::Vec};
use errno::{Errno, SysResult};

/// Most descriptors a process may hold.
pub const MAX_FDS: usize = 1024;

/// What a descriptor refers to.
#[derive(Clone)]
pub enum File {
    /// The serial console.
    Console,
    /// A read-only file with its current offset.
    ReadOnly {
        /// Contents.
        data: Cow<'static, [u8]>,
        /// Read position.
        offset: usize,
        /// Its page-cache object, for files that can be mapped (initramfs files).
        object: Option<alloc::sync::Arc<mm::pagecache::FileObject>>,
    },
    /// A memfd: anonymous shared memory with a size (`memfd_create` + `ftruncate`).
    Memfd {
        /// The shared-memory object.
        object: alloc::sync::Arc<mm::pagecache::FileObject>,
        /// Read/write position.
        offset: u64,
    },
    /// A directory (only `close` and `fstat` make sense).
    Directory,
    /// A registry key's file, opened for writing (reads were served as `ReadOnly`).
    RegistryKey {
        /// The key.
        key: &'static crate::registry::Key,
        /// Write position: a `/proc/sys` write not at 0 is ignored (Linux's strict
        /// `sysctl_writes_strict`).
        offset: u64,
        /// Opened through `/proc/sys` (sysctl syntax), not `/sys` (sysfs syntax).
        sysctl: bool,
    },
    /// `/proc/<pid>/mem`: the target's memory at offset = address.
    ProcessMemory {
        /// The process whose memory this is.
        target: alloc::sync::Arc<super::Process>,
        /// Current address.
        offset: u64,
        /// Opened for writing.
        writable: bool,
    },
    /// A DAMON control file, opened for writing.
    DamonControl(crate::mem::damon::Control),
    /// `/proc/<pid>/oom_score_adj`, opened for writing.
    OomScoreAdj(alloc::sync::Arc<super::Process>),
    /// A userfaultfd (closing its last descriptor releases it).
    Userfaultfd(alloc::sync::Arc<crate::mem::userfaultfd::UserfaultFile>),
    /// `/proc/<pid>/maps`, `smaps` or `numa_maps`, rendered a batch of VMAs at a time as
    /// it is read (Linux's seq_file), so the text of a huge address space never sits in
    /// the kernel heap whole.
    VmaText(alloc::boxed::Box<crate::procfs::VmaText>),
    /// `/proc/<pid>/pagemap`: 8 bytes per virtual page.
    PageMap {
        /// The process described.
        target: alloc::sync::Arc<super::Process>,
        /// Current byte offset.
        offset: u64,
        /// The reader may see physical frame numbers.
        show_pfn: bool,
    },
}

/// One descriptor slot.
#[derive(Clone)]
pub struct Descriptor {
    /// The open file.
    pub file: File,
    /// `O_CLOEXEC`.
    pub cloexec: bool,
}

/// A process's descriptor table.
#[derive(Clone, Default)]
pub struct FileTable {
    slots: Vec<Option<Descriptor>>,
}

impl FileTable {
    /// A table with stdin, stdout and stderr on the console.
    pub fn with_console() -> Self {
        let console = Some(Descriptor {
            file: File::Console,
            cloexec: false,
        });
        Self {
            slots: alloc::vec![console.clone(), console.clone(), console],
        }
    }

    /// Installs `file` at the lowest free descriptor.
    pub fn insert(&mut self, file: File, cloexec: bool) -> SysResult<u64> {
        let slot = Some(Descriptor { file, cloexec });
        if let Some(i) = self.slots.iter().position(Option::is_none) {
            self.slots[i] = slot;
            return Ok(i as u64);
        }
        if self.slots.len() >= MAX_FDS {
            return Err(Errno::EMFILE);
        }
        self.slots.push(slot);
        Ok(self.slots.len() as u64 - 1)
    }

    /// The descriptor `fd`.
    pub fn get_mut(&mut self, fd: u64) -> SysResult<&mut Descriptor> {
        self.slots
            .get_mut(usize::try_from(fd).map_err(|_| Errno::EBADF)?)
            .and_then(Option::as_mut)
            .ok_or(Errno::EBADF)
    }

    /// Closes `fd`.
    pub fn close(&mut self, fd: u64) -> SysResult<()> {
        let slot = self
            .slots
            .get_mut(usize::try_from(fd).map_err(|_| Errno::EBADF)?)
            .ok_or(Errno::EBADF)?;
        slot.take().map(|_| ()).ok_or(Errno::EBADF)
    }

    /// Duplicates `fd` to the lowest free slot (`dup`).
    pub fn dup(&mut self, fd: u64) -> SysResult<u64> {
        let d = self.get_mut(fd)?.clone();
        self.insert(d.file, false)
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
