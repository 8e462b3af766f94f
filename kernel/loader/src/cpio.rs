//! The cpio "newc" archive format of initramfs images: regular files, with their paths.

use alloc::{string::String, vec::Vec};

/// One regular file of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Absolute path (`/bin/init`), without `./`.
    pub path: String,
    /// Contents.
    pub data: &'a [u8],
    /// Permission bits (`0o755`, ...; the type bits left out).
    pub perm: u32,
}

const HEADER_BYTES: usize = 110;
const MAGIC: &[u8] = b"070701";
const S_IFMT: usize = 0o170000;
const S_IFREG: usize = 0o100000;
const S_IFDIR: usize = 0o040000;

fn hex_field(header: &[u8], index: usize) -> Option<usize> {
    let text = core::str::from_utf8(header.get(6 + index * 8..14 + index * 8)?).ok()?;
    usize::from_str_radix(text, 16).ok()
}

/// The regular files of `archive`, in archive order. Parsing stops at the trailer or at
/// the first malformed header (what came before is kept).
pub fn parse(archive: &[u8]) -> Vec<Entry<'_>> {
    let mut files = Vec::new();
    walk(archive, |mode, path, data| {
        if mode & S_IFMT == S_IFREG {
            let perm = (mode & 0o7777) as u32;
            files.push(Entry { path, data, perm });
        }
    });
    files
}

/// The directories `archive` lists (absolute paths, `/` left out), in archive order;
/// with the same stopping rules as [`parse`].
pub fn directories(archive: &[u8]) -> Vec<String> {
    let mut dirs = Vec::new();
    walk(archive, |mode, path, _| {
        if mode & S_IFMT == S_IFDIR && path != "/" {
            dirs.push(path);
        }
    });
    dirs
}

/// Calls `member(mode, absolute path, data)` for every member with a UTF-8 name.
fn walk<'a>(archive: &'a [u8], mut member: impl FnMut(usize, String, &'a [u8])) {
    let mut at = 0usize;
    while let Some(header) = archive.get(at..at.saturating_add(HEADER_BYTES)) {
        if &header[..6] != MAGIC {
            break;
        }
        let (Some(mode), Some(file_size), Some(name_size)) = (
            hex_field(header, 1),
            hex_field(header, 6),
            hex_field(header, 11),
        ) else {
            break;
        };
        let name_start = at + HEADER_BYTES;
        let Some(name_end) = name_start.checked_add(name_size) else {
            break;
        };
        let Some(name) = archive.get(name_start..name_end.saturating_sub(1).max(name_start)) else {
            break;
        };
        let data_start = name_end.next_multiple_of(4);
        let Some(data_end) = data_start.checked_add(file_size) else {
            break;
        };
        let Some(data) = archive.get(data_start..data_end) else {
            break;
        };
        if name == b"TRAILER!!!" {
            break;
        }
        if let Ok(name) = core::str::from_utf8(name) {
            let name = name.trim_start_matches("./").trim_start_matches('/');
            let name = if name == "." {
                ""
            } else {
                name.trim_end_matches('/')
            };
            member(mode, String::from("/") + name, data);
        }
        at = data_end.next_multiple_of(4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{format, vec::Vec};
    use proptest::prelude::*;

    /// Appends one newc member.
    fn member(out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
        let header =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0, mode, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    fn archive() -> Vec<u8> {
        let mut a = Vec::new();
        member(&mut a, ".", 0o040755, b"");
        member(&mut a, "./bin", 0o040755, b"");
        member(&mut a, "./bin/hello", 0o100755, b"\x7fELF-hello");
        member(&mut a, "init", 0o100755, b"init-bytes!");
        member(&mut a, "TRAILER!!!", 0, b"");
        a
    }

    #[test]
    fn regular_files_with_absolute_paths() {
        let a = archive();
        let files = parse(&a);
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0],
            Entry {
                path: "/bin/hello".into(),
                data: b"\x7fELF-hello",
                perm: 0o755,
            }
        );
        assert_eq!(files[1].path, "/init");
        assert_eq!(files[1].data, b"init-bytes!");
    }

    #[test]
    fn directories_without_the_root() {
        assert_eq!(directories(&archive()), ["/bin"]);
    }

    #[test]
    fn truncated_archive_keeps_what_came_before() {
        let a = archive();
        for cut in 0..a.len() {
            let files = parse(&a[..cut]);
            assert!(files.len() <= 2);
            for f in &files {
                assert!(f.path == "/bin/hello" || f.path == "/init");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn corrupted_archives_never_panic(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..8)) {
            let mut a = archive();
            for (at, byte) in flips {
                let i = at % a.len();
                a[i] = byte;
            }
            let _ = parse(&a);
        }
    }
}
