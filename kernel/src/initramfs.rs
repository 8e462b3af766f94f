//! The initramfs: a cpio "newc" archive loaded by QEMU `-initrd`, parsed once into a
//! read-only table of files that stay where QEMU put them.

use crate::arch::paging::phys_to_virt;
use alloc::{collections::BTreeMap, string::String};
use spin::Once;

static FILES: Once<BTreeMap<String, &'static [u8]>> = Once::new();

/// Parses a newc archive into `path -> contents` (regular files only).
pub fn parse(archive: &'static [u8]) -> BTreeMap<String, &'static [u8]> {
    loader::cpio::parse(archive)
        .into_iter()
        .map(|e| (e.path, e.data))
        .collect()
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

static OBJECTS: spin::Mutex<BTreeMap<String, alloc::sync::Arc<mm::pagecache::FileObject>>> =
    spin::Mutex::new(BTreeMap::new());
static NEXT_FILE_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// The page-cache object of `path` (one per file, so every mapping of it shares pages).
pub fn file_object(path: &str) -> Option<alloc::sync::Arc<mm::pagecache::FileObject>> {
    let data = lookup(path)?;
    let mut objects = OBJECTS.lock();
    let object = objects.entry(String::from(path)).or_insert_with(|| {
        let id =
            mm::pagecache::FileId(NEXT_FILE_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed));
        mm::pagecache::FileObject::from_bytes(
            id,
            path,
            data,
            crate::mem::frames::mm_frames().clone(),
        )
    });
    Some(object.clone())
}

/// Pages of initramfs files held in the page cache (`Cached:` in /proc/meminfo).
pub fn page_cache_pages() -> u64 {
    OBJECTS.lock().values().map(|o| o.cache().len()).sum()
}

/// `drop_caches`: forgets every cached page of the initramfs files (their bytes stay in the
/// archive, so nothing is lost; mappings keep the frames they hold). Returns the pages.
pub fn drop_page_cache() -> u64 {
    OBJECTS
        .lock()
        .values()
        .map(|o| o.cache().remove_range(0, u64::MAX))
        .sum()
}

/// The contents of `path`, if the initramfs has it.
pub fn lookup(path: &str) -> Option<&'static [u8]> {
    FILES.get()?.get(path).copied()
}

/// Whether any file lives under directory `dir`.
pub fn is_dir(dir: &str) -> bool {
    let prefix = alloc::format!("{}/", dir.trim_end_matches('/'));
    FILES
        .get()
        .is_some_and(|f| dir == "/" || f.keys().any(|k| k.starts_with(&prefix)))
}
