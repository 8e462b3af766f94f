//! The kernel command line (`-append`): `test=NAME`, `log=LEVEL`, and the rest for init.

use log::LevelFilter;

/// Parsed kernel options.
pub struct Args<'a> {
    /// Guest test to run instead of init (`test=NAME`).
    pub test: Option<&'a str>,
    /// Console log level (`log=error|warn|info|debug|trace`).
    pub log_level: LevelFilter,
}

impl<'a> Args<'a> {
    /// Parses space-separated `key=value` words; unknown words are ignored.
    pub fn parse(line: &'a str) -> Self {
        let mut args = Args { test: None, log_level: LevelFilter::Info };
        for word in line.split_ascii_whitespace() {
            match word.split_once('=') {
                Some(("test", name)) => args.test = Some(name),
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
                _ => {}
            }
        }
        args
    }
}
