//! The kernel crate's layering: no import circle between its top folders.
//!
//! Each top-level module of `kernel/src` (a folder such as `mem/`, or a file such as
//! `executor.rs`) is a node; a `crate::NAME` path in one module's source (in a `use`,
//! a `use crate::{a::.., b}` group, or inline) is an arrow to module `NAME`
//! (`#[macro_export]` macros count as their defining module). The test fails when the
//! arrows make a circle, and names the files that make each arrow of it, so the arrow
//! that runs back up can be found and moved. `LAYERS` below is the order a newcomer
//! reads: every arrow must point to a module on the same or a lower line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The kernel crate's top modules, top layer first: a module may use only modules on
/// its own line or below it. A new top module must be given a line here.
const LAYERS: &[&[&str]] = &[
    &["main", "ktest", "ktest_frames"],
    &["entry"],
    &["syscall"],
    &["fs", "procfs"],
    &["registry"],
    &["memd"],
    &["proc"],
    &["vfs", "initramfs"],
    &[
        "executor",
        "watchdog",
        "smp",
        "topology",
        "interrupts",
        "virtio_blk",
    ],
    &["mem", "random", "boot_info", "cmdline"],
    &["tunable", "panic", "logger"],
    &["arch"],
    &["time"],
];

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable kernel source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top module a file belongs to: its first folder, or its own stem at the top.
fn top_module(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).expect("file under root");
    let first = rel.components().next().expect("non-empty path");
    let first = first.as_os_str().to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Strips `//` comments (doc comments name modules in prose, not as imports).
fn strip_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level names a source text reaches through `crate::`.
fn crate_references(source: &str) -> BTreeSet<String> {
    let text = strip_comments(source);
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(is_ident) {
            continue; // a longer identifier ending in "crate" (`$crate::` counts)
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::b, c, d::{e, f}}`: the first name of each top-level item.
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.extend(first_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            names.extend(first_ident(&item));
        } else {
            names.extend(first_ident(rest));
        }
    }
    names
}

fn first_ident(text: &str) -> Option<String> {
    let text = text.trim_start();
    let ident: String = text.chars().take_while(|&c| is_ident(c)).collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

/// `#[macro_export] macro_rules! NAME` definitions in a source text.
fn exported_macros(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut exported = false;
    for line in source.lines() {
        let line = line.trim();
        if line.starts_with("#[macro_export]") {
            exported = true;
        } else if let Some(rest) = line.strip_prefix("macro_rules!") {
            if exported {
                out.extend(first_ident(rest));
            }
            exported = false;
        }
    }
    out
}

/// Arrows between top modules, each with the files that make it.
fn module_arrows(root: &Path) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut macro_home = BTreeMap::new();
    let mut sources = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("readable source file");
        let module = top_module(root, &file);
        for name in exported_macros(&source) {
            macro_home.insert(name, module.clone());
        }
        sources.push((file, module, source));
    }
    let mut arrows: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (file, module, source) in &sources {
        for name in crate_references(source) {
            let target = macro_home.get(&name).cloned().unwrap_or(name);
            if &target != module {
                let shown = file
                    .strip_prefix(root)
                    .unwrap_or(file)
                    .display()
                    .to_string();
                arrows
                    .entry((module.clone(), target))
                    .or_default()
                    .insert(shown);
            }
        }
    }
    arrows
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|line| line.contains(&module))
}

#[test]
fn kernel_top_modules_form_no_circle() {
    let root = guest_tests::repo_root().join("kernel/src");
    let arrows = module_arrows(&root);
    let mut problems = Vec::new();
    for ((from, to), files) in &arrows {
        let files: Vec<_> = files.iter().map(String::as_str).collect();
        match (layer_of(from), layer_of(to)) {
            (None, _) => problems.push(format!("module `{from}` has no line in LAYERS")),
            (_, None) => problems.push(format!("module `{to}` has no line in LAYERS")),
            (Some(a), Some(b)) if a > b => problems.push(format!(
                "`{from}` uses `{to}`, a higher layer, in: {}",
                files.join(", ")
            )),
            _ => {}
        }
    }
    // Within one line, modules may use each other but not in a circle.
    for ((from, to), files) in &arrows {
        if layer_of(from).is_some() && layer_of(from) == layer_of(to) {
            if let Some(back) = arrows.get(&(to.clone(), from.clone())) {
                if from < to {
                    problems.push(format!(
                        "`{from}` and `{to}` use each other: {} / {}",
                        files.iter().cloned().collect::<Vec<_>>().join(", "),
                        back.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "kernel/src layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn references_are_read_from_paths_groups_and_macros() {
    let source = "use crate::{arch::{cpu, tlb}, executor::scheduler, time};\n\
                  // crate::commented::out\n\
                  fn f() { crate::proc::lookup(1); $crate::logger::x(); my_crate::skipped(); }";
    let names: Vec<_> = crate_references(source).into_iter().collect();
    assert_eq!(names, ["arch", "executor", "logger", "proc", "time"]);
    let macros =
        exported_macros("#[macro_export]\nmacro_rules! kprintln {}\nmacro_rules! local {}");
    assert_eq!(macros, ["kprintln"]);
}

#[test]
fn an_arrow_back_up_is_reported() {
    let dir = std::env::temp_dir().join(format!("layering-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("mem")).unwrap();
    std::fs::write(dir.join("mem/a.rs"), "use crate::proc::Process;").unwrap();
    std::fs::write(dir.join("proc.rs"), "use crate::mem::a;").unwrap();
    let arrows = module_arrows(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(arrows.contains_key(&("mem".into(), "proc".into())));
    assert!(arrows.contains_key(&("proc".into(), "mem".into())));
    assert!(layer_of("mem") > layer_of("proc"));
}
