//! The kernel command line (`-append`): `test=NAME`, `log=LEVEL`, and the rest for init.

#![deny(unsafe_code)]

use log::LevelFilter;

/// Parsed kernel options.
pub struct Args<'a> {
    /// Guest test to run instead of init (`test=NAME`).
    pub test: Option<&'a str>,
    /// Console log level (`log=error|warn|info|debug|trace`).
    pub log_level: LevelFilter,
    /// `nosmap`: leave SMAP off (some hypervisors cannot run STAC/CLAC).
    pub nosmap: bool,
    /// KPTI setting (`kpti=on|off|auto`).
    pub kpti: crate::arch::kpti::Mode,
    /// Program init runs instead of its suite (`init.run=PATH`).
    pub init_run: Option<&'a str>,
    /// The virtio disk holding the root filesystem (`root=vdb` or `root=/dev/vdb`),
    /// mounted read-only at `/` instead of the initramfs.
    pub root: Option<&'a str>,
    line: &'a str,
}

impl<'a> Args<'a> {
    /// Parses space-separated `key=value` words; unknown words are ignored.
    pub fn parse(line: &'a str) -> Self {
        let mut args = Args {
            test: None,
            log_level: LevelFilter::Info,
            nosmap: false,
            kpti: crate::arch::kpti::Mode::Auto,
            init_run: None,
            root: None,
            line,
        };
        for word in line.split_ascii_whitespace() {
            match word.split_once('=') {
                Some(("test", name)) => args.test = Some(name),
                Some(("init.run", path)) => args.init_run = Some(path),
                Some(("root", dev)) => args.root = Some(dev.trim_start_matches("/dev/")),
                Some(("kpti", "on")) => args.kpti = crate::arch::kpti::Mode::On,
                Some(("kpti", "off")) => args.kpti = crate::arch::kpti::Mode::Off,
                Some(("log", level)) => {
                    args.log_level = match level {
                        "error" => LevelFilter::Error,
                        "warn" => LevelFilter::Warn,
                        "debug" => LevelFilter::Debug,
                        "trace" => LevelFilter::Trace,
                        "off" => LevelFilter::Off,
                        _ => LevelFilter::Info,
                    }
                }
                None if word == "nosmap" => args.nosmap = true,
                _ => {}
            }
        }
        args
    }

    /// The `init.arg=VALUE` words, in order.
    pub fn init_args(&self) -> impl Iterator<Item = &'a str> {
        self.line
            .split_ascii_whitespace()
            .filter_map(|w| w.strip_prefix("init.arg="))
    }
}
