//! Path resolution as Linux's `namei` does it, over any namespace: absolute paths and
//! paths relative to a working directory, `.` and `..` (`..` at the root stays there),
//! repeated slashes, symbolic links (relative and absolute, at most [`MAX_SYMLINKS`] per
//! walk, else ELOOP), and the trailing-slash rule (the final object must be a directory,
//! else ENOTDIR). A component that is not a directory in the middle of a path is
//! ENOTDIR, a missing one ENOENT; a name longer than [`NAME_MAX`] or a path of
//! [`PATH_MAX`] bytes or more is ENAMETOOLONG.
//!
//! The walk asks its [`Namespace`] one question per component ("what is this canonical
//! path?"), so the kernel's mount table and filesystems stay out of this crate and the
//! rules are tested on the host.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

use alloc::{string::String, vec::Vec};
use errno::Errno;

/// Longest path, counting its terminating NUL (Linux's `PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Longest component (Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Symbolic links followed in one walk before ELOOP (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: usize = 40;

/// What a name is, as far as the walk cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory: the walk may go through it.
    Dir,
    /// Anything else that is not a link (file, device, ...).
    NonDir,
    /// A symbolic link with this target.
    Symlink(String),
}

/// The namespace a walk runs over.
pub trait Namespace {
    /// What the canonical absolute `path` (`"/"`, `"/a/b"`) names: ENOENT when nothing,
    /// or any other errno to end the walk with.
    fn kind(&mut self, path: &str) -> Result<Kind, Errno>;
}

/// What the walk found at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A directory.
    Dir,
    /// A non-directory.
    NonDir,
    /// A symbolic link left unfollowed (the caller asked not to follow the last one).
    Symlink(String),
    /// Nothing, though every directory before it exists (where `O_CREAT` would create).
    Missing,
}

/// A resolved path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The canonical absolute path: no `.`, `..`, repeated or trailing slashes, links
    /// followed (all but an unfollowed last one).
    pub path: String,
    /// What is there.
    pub found: Found,
    /// The path named a directory explicitly (it ended in `/`, `/.` or `/..`).
    pub wants_dir: bool,
}

/// Resolves `path` from the working directory `cwd` (a canonical absolute path);
/// follows a symbolic link in the last position only when `follow_last` (or the path
/// ends in a slash).
pub fn resolve(
    ns: &mut impl Namespace,
    cwd: &str,
    path: &str,
    follow_last: bool,
) -> Result<Resolved, Errno> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let mut stack: Vec<String> = if path.starts_with('/') {
        Vec::new()
    } else {
        components(cwd).map(String::from).collect()
    };
    let last_name = path.rsplit('/').find(|c| !c.is_empty());
    let wants_dir = path.ends_with('/') || matches!(last_name, Some(".") | Some(".."));
    // Components still to walk, the next one last.
    let mut todo: Vec<String> = components(path).rev().map(String::from).collect();
    let mut links = 0;
    let mut found = Found::Dir;
    while let Some(name) = todo.pop() {
        let is_last = todo.is_empty();
        match name.as_str() {
            "." => {
                found = Found::Dir;
                continue;
            }
            ".." => {
                stack.pop();
                found = Found::Dir;
                continue;
            }
            _ => {}
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        stack.push(name);
        let here = join(&stack);
        match ns.kind(&here) {
            Err(Errno::ENOENT) if is_last => {
                found = Found::Missing;
            }
            Err(e) => return Err(e),
            Ok(Kind::Dir) => found = Found::Dir,
            Ok(Kind::NonDir) if is_last && !wants_dir => found = Found::NonDir,
            Ok(Kind::NonDir) => return Err(Errno::ENOTDIR),
            Ok(Kind::Symlink(target)) if is_last && !follow_last && !wants_dir => {
                found = Found::Symlink(target);
            }
            Ok(Kind::Symlink(target)) => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                if target.is_empty() {
                    return Err(Errno::ENOENT);
                }
                stack.pop();
                if target.starts_with('/') {
                    stack.clear();
                }
                todo.extend(components(&target).rev().map(String::from));
                if todo.is_empty() {
                    // A link to "/" (or "/."): the walk ends at the directory it names.
                    found = Found::Dir;
                }
            }
        }
    }
    Ok(Resolved {
        path: join(&stack),
        found,
        wants_dir,
    })
}

/// The non-empty components of `path` (repeated slashes collapse).
fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// `/a/b` from `[a, b]`; `/` from nothing.
fn join(stack: &[String]) -> String {
    if stack.is_empty() {
        return String::from("/");
    }
    let mut out = String::new();
    for c in stack {
        out.push('/');
        out.push_str(c);
    }
    out
}

/// The directory part and the last name of a canonical absolute path (`/` has none).
pub fn split_last(path: &str) -> Option<(&str, &str)> {
    let (dir, name) = path.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{collections::BTreeMap, format, string::ToString};
    use proptest::prelude::*;

    /// A namespace from a table of canonical paths.
    struct Table(BTreeMap<String, Kind>);

    impl Namespace for Table {
        fn kind(&mut self, path: &str) -> Result<Kind, Errno> {
            self.0.get(path).cloned().ok_or(Errno::ENOENT)
        }
    }

    fn table() -> Table {
        let mut t = BTreeMap::new();
        for d in ["/", "/bin", "/proc", "/proc/7", "/a", "/a/b"] {
            t.insert(d.to_string(), Kind::Dir);
        }
        for f in ["/bin/init", "/a/b/file", "/proc/7/maps"] {
            t.insert(f.to_string(), Kind::NonDir);
        }
        let links = [
            ("/proc/self", "7"),
            ("/a/up", "../bin"),
            ("/a/abs", "/a/b/file"),
            ("/a/loop", "loop"),
            ("/a/ping", "pong"),
            ("/a/pong", "ping"),
            ("/a/dangling", "nowhere"),
            ("/a/root", "/"),
            ("/a/empty", ""),
        ];
        for (at, to) in links {
            t.insert(at.to_string(), Kind::Symlink(to.to_string()));
        }
        Table(t)
    }

    fn walk(cwd: &str, path: &str) -> Result<(String, Found), Errno> {
        resolve(&mut table(), cwd, path, true).map(|r| (r.path, r.found))
    }

    fn at(path: &str, found: Found) -> Result<(String, Found), Errno> {
        Ok((path.to_string(), found))
    }

    #[test]
    fn absolute_and_relative() {
        assert_eq!(walk("/", "/bin/init"), at("/bin/init", Found::NonDir));
        assert_eq!(walk("/bin", "init"), at("/bin/init", Found::NonDir));
        assert_eq!(walk("/a", "b/file"), at("/a/b/file", Found::NonDir));
        assert_eq!(walk("/", "bin"), at("/bin", Found::Dir));
    }

    #[test]
    fn dots_and_slashes() {
        assert_eq!(walk("/a/b", ".."), at("/a", Found::Dir));
        assert_eq!(walk("/a/b", "../../.."), at("/", Found::Dir));
        assert_eq!(walk("/", "/.."), at("/", Found::Dir));
        assert_eq!(walk("/", "//bin///./init"), at("/bin/init", Found::NonDir));
        assert_eq!(walk("/bin", "."), at("/bin", Found::Dir));
        assert_eq!(
            walk("/", "/a/b/../b/./file"),
            at("/a/b/file", Found::NonDir)
        );
        assert_eq!(walk("/", "/"), at("/", Found::Dir));
    }

    #[test]
    fn trailing_slash_needs_a_directory() {
        assert_eq!(walk("/", "/bin/"), at("/bin", Found::Dir));
        assert_eq!(walk("/", "/bin/init/"), Err(Errno::ENOTDIR));
        assert_eq!(walk("/", "/bin/init/."), Err(Errno::ENOTDIR));
        assert_eq!(walk("/", "/bin/init/.."), Err(Errno::ENOTDIR));
        assert_eq!(walk("/", "/a/abs/"), Err(Errno::ENOTDIR));
        let r = resolve(&mut table(), "/", "/bin/", true).unwrap();
        assert!(r.wants_dir);
    }

    #[test]
    fn missing_and_not_a_directory() {
        assert_eq!(walk("/", "/nope"), at("/nope", Found::Missing));
        assert_eq!(walk("/", "/nope/x"), Err(Errno::ENOENT));
        assert_eq!(walk("/", "/bin/init/x"), Err(Errno::ENOTDIR));
        assert_eq!(walk("/", ""), Err(Errno::ENOENT));
    }

    #[test]
    fn symbolic_links() {
        assert_eq!(
            walk("/", "/proc/self/maps"),
            at("/proc/7/maps", Found::NonDir)
        );
        assert_eq!(walk("/", "/proc/self"), at("/proc/7", Found::Dir));
        assert_eq!(walk("/", "/a/up/init"), at("/bin/init", Found::NonDir));
        assert_eq!(walk("/", "/a/abs"), at("/a/b/file", Found::NonDir));
        assert_eq!(walk("/", "/a/root/bin"), at("/bin", Found::Dir));
        assert_eq!(walk("/", "/a/root"), at("/", Found::Dir));
        assert_eq!(walk("/", "/proc/self/.."), at("/proc", Found::Dir));
        assert_eq!(walk("/", "/a/dangling"), at("/a/nowhere", Found::Missing));
        assert_eq!(walk("/", "/a/dangling/x"), Err(Errno::ENOENT));
        assert_eq!(walk("/", "/a/empty"), Err(Errno::ENOENT));
        assert_eq!(walk("/", "/a/loop"), Err(Errno::ELOOP));
        assert_eq!(walk("/", "/a/ping/x"), Err(Errno::ELOOP));
        let r = resolve(&mut table(), "/", "/a/abs", false).unwrap();
        assert_eq!(r.found, Found::Symlink("/a/b/file".into()));
        assert_eq!(r.path, "/a/abs");
        // A trailing slash follows the last link even when told not to.
        let r = resolve(&mut table(), "/", "/proc/self/", false).unwrap();
        assert_eq!((r.path.as_str(), r.found), ("/proc/7", Found::Dir));
    }

    #[test]
    fn name_and_path_limits() {
        let long = "x".repeat(NAME_MAX + 1);
        assert_eq!(walk("/", &format!("/{long}")), Err(Errno::ENAMETOOLONG));
        let ok = "x".repeat(NAME_MAX);
        assert_eq!(
            walk("/", &format!("/{ok}")),
            at(&format!("/{ok}"), Found::Missing)
        );
        let path = "/".repeat(PATH_MAX);
        assert_eq!(walk("/", &path), Err(Errno::ENAMETOOLONG));
        let path = "/".repeat(PATH_MAX - 1);
        assert_eq!(walk("/", &path), at("/", Found::Dir));
    }

    #[test]
    fn split_last_parts() {
        assert_eq!(split_last("/a/b"), Some(("/a", "b")));
        assert_eq!(split_last("/a"), Some(("/", "a")));
        assert_eq!(split_last("/"), None);
    }

    /// Lexical normalisation, the reference for paths without links.
    fn normalise(cwd: &str, path: &str) -> String {
        let mut stack: Vec<&str> = if path.starts_with('/') {
            Vec::new()
        } else {
            cwd.split('/').filter(|c| !c.is_empty()).collect()
        };
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    stack.pop();
                }
                c => stack.push(c),
            }
        }
        join(&stack.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// Every directory exists.
    struct AllDirs;
    impl Namespace for AllDirs {
        fn kind(&mut self, _: &str) -> Result<Kind, Errno> {
            Ok(Kind::Dir)
        }
    }

    proptest! {
        #[test]
        fn matches_lexical_normalisation_without_links(
            parts in proptest::collection::vec(prop_oneof!["a", "bc", "\\.", "\\.\\.", ""], 1..12),
            absolute in any::<bool>(),
        ) {
            let mut path = parts.join("/");
            if absolute { path.insert(0, '/'); }
            prop_assume!(!path.is_empty());
            let r = resolve(&mut AllDirs, "/cwd/x", &path, true).unwrap();
            prop_assert_eq!(&r.path, &normalise("/cwd/x", &path));
            prop_assert!(!r.path.contains("//") && !r.path.contains("/./"));
            prop_assert!(r.path == "/" || !r.path.ends_with('/'));
        }

        #[test]
        fn never_panics_on_any_table(path in "[a-z./]{0,40}") {
            let _ = resolve(&mut table(), "/a/b", &path, true);
            let _ = resolve(&mut table(), "/a/b", &path, false);
        }
    }
}
