//! `/dev`: the console (`console`, `tty`), `null` and `zero`.

use super::{
    console::Console,
    dir::{with_dots, DirFile},
    path_inode_number, Caller, File, Filesystem, Node, OpenRequest, Stat,
};
use crate::arch::uaccess::copy_to_user;
use alloc::{string::String, sync::Arc, vec::Vec};
use errno::{Errno, SysResult};
use spin::RwLock;

/// Opens a device registered from outside this folder.
pub type DeviceOpener = fn(&Caller, &OpenRequest) -> SysResult<Arc<dyn File>>;

/// Devices other subsystems add (`/dev/userfaultfd`), by name.
static EXTRA: RwLock<Vec<(&'static str, DeviceOpener)>> = RwLock::new(Vec::new());

/// Adds `/dev/NAME`, opened by `open`.
pub fn register(name: &'static str, open: DeviceOpener) {
    EXTRA.write().push((name, open));
}

fn extra(name: &str) -> Option<DeviceOpener> {
    EXTRA
        .read()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, o)| *o)
}

const NAME: &str = "devtmpfs";
const DEV: u64 = super::stat::encode_dev(0, 5);
/// The names in `/dev`.
const DEVICES: [&str; 4] = ["console", "null", "tty", "zero"];
/// Most bytes one read of `/dev/zero` gives.
const ZERO_READ_MAX: u64 = 1 << 20;

/// `/dev/null`: reads end at once, writes vanish.
struct Null;

impl File for Null {
    fn read(&self, _buf: u64, _count: u64) -> SysResult<u64> {
        Ok(0)
    }

    fn write(&self, _buf: u64, count: u64) -> SysResult<u64> {
        Ok(count)
    }

    fn pread(&self, _buf: u64, _count: u64, _offset: u64) -> SysResult<u64> {
        Ok(0)
    }

    fn pwrite(&self, _buf: u64, count: u64, _offset: u64) -> SysResult<u64> {
        Ok(count)
    }

    fn seek(&self, _offset: i64, _whence: super::Whence) -> SysResult<u64> {
        Ok(0)
    }

    fn stat(&self) -> Stat {
        Stat::char_device(0o666, 1, 3)
    }
}

/// `/dev/zero`: reads give zeros, writes vanish.
struct Zero;

impl File for Zero {
    fn read(&self, buf: u64, count: u64) -> SysResult<u64> {
        const PAGE: [u8; 4096] = [0; 4096];
        let count = count.min(ZERO_READ_MAX);
        let mut done = 0;
        while done < count {
            let n = (count - done).min(PAGE.len() as u64);
            if let Err(e) = copy_to_user(buf + done, &PAGE[..n as usize]) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            done += n;
        }
        Ok(done)
    }

    fn write(&self, _buf: u64, count: u64) -> SysResult<u64> {
        Ok(count)
    }

    fn pread(&self, buf: u64, count: u64, _offset: u64) -> SysResult<u64> {
        self.read(buf, count)
    }

    fn pwrite(&self, _buf: u64, count: u64, _offset: u64) -> SysResult<u64> {
        Ok(count)
    }

    fn seek(&self, _offset: i64, _whence: super::Whence) -> SysResult<u64> {
        Ok(0)
    }

    fn stat(&self) -> Stat {
        Stat::char_device(0o666, 1, 5)
    }
}

/// The `/dev` filesystem.
pub struct DevFs;

impl Filesystem for DevFs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn lookup(&self, rel: &str, _caller: &Caller) -> SysResult<Node> {
        match rel {
            "" => Ok(Node::Dir),
            name if DEVICES.contains(&name) || extra(name).is_some() => Ok(Node::Device),
            _ => Err(Errno::ENOENT),
        }
    }

    fn open(
        &self,
        rel: &str,
        node: &Node,
        req: &OpenRequest,
        caller: &Caller,
    ) -> SysResult<Arc<dyn File>> {
        let path = String::from("/dev") + if rel.is_empty() { "" } else { "/" } + rel;
        let ino = path_inode_number(NAME, &path);
        Ok(match (rel, node) {
            (_, Node::Dir) => {
                let stat = Stat::directory(0o755).at(DEV, ino);
                let caller = caller.clone();
                let lister = move || Ok(with_dots(NAME, &path, DevFs.readdir("", &caller)?));
                Arc::new(DirFile::new(stat, alloc::boxed::Box::new(lister)))
            }
            ("console" | "tty", _) => Arc::new(Console),
            ("null", _) => Arc::new(Null),
            ("zero", _) => Arc::new(Zero),
            (name, _) => extra(name).ok_or(Errno::ENOENT)?(caller, req)?,
        })
    }

    fn readdir(&self, rel: &str, _caller: &Caller) -> SysResult<Vec<(String, Node)>> {
        if !rel.is_empty() {
            return Err(Errno::ENOTDIR);
        }
        let mut names: Vec<&str> = DEVICES.to_vec();
        names.extend(EXTRA.read().iter().map(|(n, _)| *n));
        names.sort_unstable();
        Ok(names
            .into_iter()
            .map(|n| (String::from(n), Node::Device))
            .collect())
    }

    fn stat(&self, rel: &str, node: &Node, caller: &Caller) -> SysResult<Stat> {
        let path = String::from("/dev") + if rel.is_empty() { "" } else { "/" } + rel;
        let ino = path_inode_number(NAME, &path);
        let stat = match node {
            Node::Dir => Stat::directory(0o755),
            _ => self
                .open(rel, node, &OpenRequest { flags: 0 }, caller)?
                .stat(),
        };
        Ok(stat.at(DEV, ino))
    }
}
