//! The initramfs: a cpio "newc" archive loaded by QEMU `-initrd`, parsed once into a
//! read-only table of files that stay where QEMU put them.

use crate::arch::paging::phys_to_virt;
use alloc::{collections::BTreeMap, string::String};
use spin::Once;

static FILES: Once<BTreeMap<String, &'static [u8]>> = Once::new();

fn hex_field(header: &[u8], index: usize) -> Option<usize> {
    let text = core::str::from_utf8(header.get(6 + index * 8..14 + index * 8)?).ok()?;
    usize::from_str_radix(text, 16).ok()
}

/// Parses a newc archive into `path -> contents` (regular files only, paths without the
/// leading `./`).
pub fn parse(archive: &'static [u8]) -> BTreeMap<String, &'static [u8]> {
    let mut files = BTreeMap::new();
    let mut at = 0usize;
    while let Some(header) = archive.get(at..at + 110) {
        if &header[..6] != b"070701" {
            break;
        }
        let (Some(mode), Some(file_size), Some(name_size)) = (hex_field(header, 1), hex_field(header, 6), hex_field(header, 11))
        else {
            break;
        };
        let name_start = at + 110;
        let Some(name) = archive.get(name_start..name_start + name_size.saturating_sub(1)) else { break };
        let data_start = (name_start + name_size).next_multiple_of(4);
        let Some(data) = archive.get(data_start..data_start + file_size) else { break };
        if name == b"TRAILER!!!" {
            break;
        }
        let is_regular = mode & 0o170000 == 0o100000;
        if is_regular {
            if let Ok(name) = core::str::from_utf8(name) {
                let path = String::from("/") + name.trim_start_matches("./").trim_start_matches('/');
                files.insert(path, data);
            }
        }
        at = (data_start + file_size).next_multiple_of(4);
    }
    files
}

/// Loads the archive QEMU placed at `[phys, phys + size)`.
pub fn init(initrd: Option<(u64, u64)>) {
    FILES.call_once(|| match initrd {
        Some((phys, size)) => {
            // SAFETY: the initrd region was reserved at boot and is never freed or written.
            let archive = unsafe { core::slice::from_raw_parts(phys_to_virt(phys), size as usize) };
            let files = parse(archive);
            log::info!("initramfs: {} files, {} KiB", files.len(), size >> 10);
            files
        }
        None => BTreeMap::new(),
    });
}

static OBJECTS: spin::Mutex<BTreeMap<String, alloc::sync::Arc<mm::pagecache::FileObject>>> = spin::Mutex::new(BTreeMap::new());
static NEXT_FILE_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// The page-cache object of `path` (one per file, so every mapping of it shares pages).
pub fn file_object(path: &str) -> Option<alloc::sync::Arc<mm::pagecache::FileObject>> {
    let data = lookup(path)?;
    let mut objects = OBJECTS.lock();
    let object = objects.entry(String::from(path)).or_insert_with(|| {
        let id = mm::pagecache::FileId(NEXT_FILE_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed));
        mm::pagecache::FileObject::from_bytes(id, path, data, crate::mem::frames::mm_frames().clone())
    });
    Some(object.clone())
}

/// The contents of `path`, if the initramfs has it.
pub fn lookup(path: &str) -> Option<&'static [u8]> {
    FILES.get()?.get(path).copied()
}

/// Whether any file lives under directory `dir`.
pub fn is_dir(dir: &str) -> bool {
    let prefix = alloc::format!("{}/", dir.trim_end_matches('/'));
    FILES.get().is_some_and(|f| dir == "/" || f.keys().any(|k| k.starts_with(&prefix)))
}
