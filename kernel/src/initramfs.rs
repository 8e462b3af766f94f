//! The initramfs: a cpio "newc" archive loaded by QEMU `-initrd`, parsed once into a
//! read-only table of files that stay where QEMU put them.

use crate::arch::paging::phys_to_virt;
use alloc::{
    collections::{BTreeMap, BTreeSet},
    string::String,
    vec::Vec,
};
use conquer_once::spin::OnceCell;

static FILES: OnceCell<BTreeMap<String, &'static [u8]>> = OnceCell::uninit();
/// Each file's permission bits.
static PERMS: OnceCell<BTreeMap<String, u32>> = OnceCell::uninit();
/// Every directory: those the archive lists, the ancestors of its files, and `/`.
static DIRS: OnceCell<BTreeSet<String>> = OnceCell::uninit();

/// Parses a newc archive into `path -> contents` (regular files only).
pub fn parse(archive: &'static [u8]) -> BTreeMap<String, &'static [u8]> {
    loader::cpio::parse(archive)
        .into_iter()
        .map(|e| (e.path, e.data))
        .collect()
}

/// Loads the archive QEMU placed at `[phys, phys + size)`.
pub fn init(initrd: Option<(u64, u64)>) {
    let archive: &'static [u8] = match initrd {
        // SAFETY: the initrd region was reserved at boot and is never freed or written.
        Some((phys, size)) => unsafe {
            core::slice::from_raw_parts(phys_to_virt(phys), size as usize)
        },
        None => &[],
    };
    PERMS.get_or_init(|| {
        loader::cpio::parse(archive)
            .into_iter()
            .map(|e| (e.path, e.perm))
            .collect()
    });
    let files = FILES.get_or_init(|| {
        let files = parse(archive);
        log::info!(
            "initramfs: {} files, {} KiB",
            files.len(),
            archive.len() >> 10
        );
        files
    });
    DIRS.get_or_init(|| {
        let mut dirs: BTreeSet<String> = loader::cpio::directories(archive).into_iter().collect();
        dirs.insert(String::from("/"));
        for path in files.keys() {
            let mut at = path.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                if parent.is_empty() {
                    break;
                }
                dirs.insert(String::from(parent));
                at = parent;
            }
        }
        dirs
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

/// The permission bits of file `path` (`0o444` for one the archive gives none).
pub fn perm(path: &str) -> u32 {
    PERMS
        .get()
        .and_then(|p| p.get(path).copied())
        .filter(|&p| p != 0)
        .unwrap_or(0o444)
}

/// Whether `dir` (canonical, absolute) is a directory of the archive.
pub fn is_dir(dir: &str) -> bool {
    dir == "/" || DIRS.get().is_some_and(|d| d.contains(dir))
}

/// The names directly inside directory `dir`, each with whether it is a directory.
pub fn children(dir: &str) -> Vec<(String, bool)> {
    let prefix = if dir == "/" {
        String::from("/")
    } else {
        alloc::format!("{dir}/")
    };
    let direct = |path: &String| {
        let name = path.strip_prefix(prefix.as_str())?;
        (!name.is_empty() && !name.contains('/')).then(|| String::from(name))
    };
    let mut out = Vec::new();
    if let Some(dirs) = DIRS.get() {
        out.extend(
            dirs.range(prefix.clone()..)
                .take_while(|p| p.starts_with(prefix.as_str()))
                .filter_map(|p| direct(p).map(|n| (n, true))),
        );
    }
    if let Some(files) = FILES.get() {
        out.extend(
            files
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(prefix.as_str()))
                .filter_map(|(p, _)| direct(p).map(|n| (n, false))),
        );
    }
    out.sort();
    out
}
