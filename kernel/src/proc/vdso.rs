//! The vDSO (`kernel/vdso/`, built by `build.rs`) and its [vvar] data page, mapped into
//! every program at exec so libc tells the time and the CPU without a system call.
//! Both are page-cache objects over fixed bytes: every process shares their frames,
//! fork keeps them, and `/proc/<pid>/maps` names them `[vvar]` and `[vdso]` as Linux.

#[path = "../../vdso/data.rs"]
mod data;

use crate::mem::aspace::{MmSpace, PAGE};
use alloc::{boxed::Box, string::String, sync::Arc, vec};
use conquer_once::spin::OnceCell;
use data::{VdsoData, VDSO_HAS_RDTSCP, VDSO_MAGIC};
use errno::SysResult;
use mm::{
    aspace::{FileMapping, MmapRequest},
    pagecache::{FileId, FileInfo, FileObject, SliceBacking},
    vma::{MapFlags, Prot},
};

/// The linked vDSO shared object.
static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// The [vvar] and [vdso] objects, made at the first exec (after the clock is set up).
static OBJECTS: OnceCell<(Arc<FileObject>, Arc<FileObject>)> = OnceCell::uninit();

/// A page-cache object named `name` (with Linux's `00:00 0` device and inode columns)
/// over `bytes`; `id` keeps it apart from every file's.
fn object(id: u64, name: &str, bytes: alloc::vec::Vec<u8>) -> Arc<FileObject> {
    let info = FileInfo {
        path: String::from(name),
        dev_major: 0,
        dev_minor: 0,
        inode: 0,
    };
    let size = bytes.len() as u64;
    let backing = Box::new(SliceBacking::new(bytes));
    FileObject::new(
        FileId(id),
        info,
        size,
        backing,
        crate::mem::frames::mm_frames().clone(),
    )
}

/// The bytes of the [vvar] page: the clock parameters the kernel's own clock uses.
fn vvar_page() -> alloc::vec::Vec<u8> {
    let (tsc_at_boot, tsc_ns_mult, ns_shift, realtime_at_boot_ns) = crate::time::clock_parameters();
    let flags = if crate::arch::cpu::features().rdtscp {
        VDSO_HAS_RDTSCP
    } else {
        0
    };
    let data = VdsoData {
        magic: VDSO_MAGIC,
        flags,
        tsc_at_boot,
        tsc_ns_mult,
        ns_shift: u64::from(ns_shift),
        realtime_at_boot_ns,
    };
    let words = [
        data.magic,
        data.flags,
        data.tsc_at_boot,
        data.tsc_ns_mult,
        data.ns_shift,
        data.realtime_at_boot_ns,
    ];
    const _: () = assert!(core::mem::size_of::<VdsoData>() == 6 * 8);
    let mut page = vec![0u8; PAGE as usize];
    for (slot, word) in page.chunks_exact_mut(8).zip(words) {
        slot.copy_from_slice(&word.to_le_bytes());
    }
    page
}

fn objects() -> &'static (Arc<FileObject>, Arc<FileObject>) {
    OBJECTS.get_or_init(|| {
        (
            object(u64::MAX - 1, "[vvar]", vvar_page()),
            object(u64::MAX - 2, "[vdso]", IMAGE.to_vec()),
        )
    })
}

/// Maps [vvar] and, one page above it, [vdso] where the mmap allocator has room;
/// returns the vDSO's address (AT_SYSINFO_EHDR).
pub fn map(mm: &MmSpace) -> SysResult<u64> {
    let (vvar, vdso) = objects();
    let image_len = (IMAGE.len() as u64).next_multiple_of(PAGE);
    let len = PAGE + image_len;
    let private = MapFlags::PRIVATE;
    let at = mm.mmap(
        &MmapRequest::anon(0, len, Prot::empty(), private | MapFlags::ANONYMOUS),
        false,
    )?;
    mm.munmap(at, len)?;
    let fixed = private | MapFlags::FIXED_NOREPLACE;
    for (addr, object, len, prot) in [
        (at, vvar, PAGE, Prot::READ),
        (at + PAGE, vdso, image_len, Prot::READ | Prot::EXEC),
    ] {
        let req = MmapRequest {
            addr,
            len,
            prot,
            flags: fixed,
            file: Some(FileMapping {
                file: object.clone(),
                readable: true,
                writable: false,
            }),
            offset: 0,
        };
        mm.mmap(&req, false)?;
    }
    Ok(at + PAGE)
}
