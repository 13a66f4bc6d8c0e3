//! "tidy": repository-wide properties checked as a test step.
//!
//! - no `todo!`/`unimplemented!` in Rust code (a stub is not done);
//! - every `unsafe` block or `unsafe impl` is preceded by a `// SAFETY:` comment;
//! - no private-range IPv4 literals in code outside `tests/data` and the one
//!   documented place that defines the virtual device's QEMU subnets;
//! - every top-level directory appears in ARCHITECTURE.md's code map;
//! - every crate root opens with a `//!` doc comment;
//! - the chip model (`driver/sim/src/{chip,wire,ap}.rs`) uses nothing of
//!   `bes2600-core`: a test double that shares the code it checks checks
//!   nothing, so the model's side of the protocol is its own;
//! - the core's modules carry `#![forbid(unsafe_code)]` each (they are
//!   mounted into the kernel crate without `lib.rs`) and name each other
//!   through `super::`, never `crate::`;
//! - `unsafe` lives in the kernel abstractions (`kernel-patches/`, counted
//!   in the Rust files the patches add or change) and the test-only SDIO
//!   simulator, never in the driver: the driver crate (`driver/kmod`) has 0
//!   unsafe lines. The per-file count is printed on every run; the rust
//!   files the patches carry get the `// SAFETY:` check too.

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

/// Files allowed to hold private-range address literals: the QEMU user-mode
/// network definitions of the virtual lab device (`besser_lab::vm::net`).
const PRIVATE_ADDR_ALLOWED: &[&str] = &["lab/src/vm.rs"];

/// The chip model: files that must not use `bes2600-core` at all.
const CHIP_MODEL_FILES: &[&str] = &[
    "driver/sim/src/chip.rs",
    "driver/sim/src/wire.rs",
    "driver/sim/src/ap.rs",
];

/// Top-level entries that are not part of the code map.
const NOT_IN_CODE_MAP: &[&str] = &[".ci", ".cargo", ".github", "target"];

pub fn run(sh: &Shell) -> Result<()> {
    let root = crate::project_root();
    let files = cmd!(sh, "git ls-files").read().context("git ls-files")?;
    let files: Vec<&str> = files.lines().collect();
    let mut problems = Vec::new();
    for f in &files {
        if !f.ends_with(".rs") {
            continue;
        }
        let text = match std::fs::read_to_string(root.join(f)) {
            Ok(t) => t,
            Err(_) => continue, // deleted in the work tree, or not UTF-8
        };
        problems.extend(stubs(f, &text));
        problems.extend(unsafe_without_safety(f, &text));
        if !f.contains("tests/data/") && !PRIVATE_ADDR_ALLOWED.contains(f) {
            problems.extend(private_addresses(f, &text));
        }
        if CHIP_MODEL_FILES.contains(f) {
            problems.extend(uses_core(f, &text));
        }
        if f.starts_with("driver/core/src/") && !f.ends_with("lib.rs") {
            problems.extend(core_module_mountable(f, &text));
        }
        if f.ends_with("src/lib.rs") || f.ends_with("src/main.rs") {
            if !text.trim_start().starts_with("//!") {
                problems.push(format!("{f}:1: crate root has no `//!` doc comment"));
            }
        }
    }
    problems.extend(unsafe_report(&root, &files)?);
    let arch =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).context("reading ARCHITECTURE.md")?;
    problems.extend(code_map_gaps(&files, &arch));
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

/// Lines whose code (not a comment) names `unsafe`.
fn unsafe_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let code = l.split("//").next().unwrap_or("");
            code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == "unsafe")
        })
        .count()
}

/// The Rust a patch adds: per `rust/...rs` file, its `+` lines (a new file's
/// whole text; a changed file's added lines).
fn patch_rust_additions(patch: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in patch.lines() {
        if let Some(path) = l.strip_prefix("+++ b/") {
            let path = path.split_whitespace().next().unwrap_or("").to_string();
            out.push((path, String::new()));
        } else if let (Some(added), Some((path, text))) = (l.strip_prefix('+'), out.last_mut()) {
            if path.ends_with(".rs") {
                text.push_str(added);
                text.push('\n');
            }
        }
    }
    out.retain(|(p, t)| p.ends_with(".rs") && !t.is_empty());
    out
}

/// Unsafe lines of the abstractions (kernel-patches) and of the driver
/// crate (driver/kmod) in the files git tracks (`bench kmod` prints them).
pub fn unsafe_totals(root: &std::path::Path) -> Result<(usize, usize)> {
    let sh = Shell::new()?;
    sh.change_dir(root);
    let files = cmd!(sh, "git ls-files").read().context("git ls-files")?;
    let files: Vec<&str> = files.lines().collect();
    let (rows, _) = unsafe_rows(root, &files)?;
    let sum = |pre: &str| {
        rows.iter()
            .filter(|(f, _)| f.starts_with(pre))
            .map(|(_, n)| n)
            .sum()
    };
    Ok((sum("kernel-patches/"), sum("driver/kmod/")))
}

/// Unsafe lines per file (abstractions, simulator, driver), and a problem
/// for any in the driver crate.
fn unsafe_rows(
    root: &std::path::Path,
    files: &[&str],
) -> Result<(Vec<(String, usize)>, Vec<String>)> {
    let mut problems = Vec::new();
    let mut rows: Vec<(String, usize)> = Vec::new();
    for f in files {
        let is_patch = f.starts_with("kernel-patches/") && f.ends_with(".patch");
        if is_patch {
            let text = std::fs::read_to_string(root.join(f)).with_context(|| f.to_string())?;
            for (path, added) in patch_rust_additions(&text) {
                let name = format!("{f}: {path}");
                problems.extend(unsafe_without_safety(&name, &added));
                rows.push((name, unsafe_lines(&added)));
            }
        } else if (f.starts_with("driver/kmod/") || f.starts_with("driver/sdiosim/"))
            && f.ends_with(".rs")
        {
            let text = std::fs::read_to_string(root.join(f)).with_context(|| f.to_string())?;
            let n = unsafe_lines(&text);
            if f.starts_with("driver/kmod/") && n > 0 {
                problems.push(format!("{f}: {n} unsafe line(s): the driver crate has none; add an abstraction in kernel-patches/"));
            }
            rows.push((f.to_string(), n));
        }
    }
    Ok((rows, problems))
}

/// Prints unsafe lines per file (abstractions, simulator, driver) and fails
/// on any in the driver crate.
fn unsafe_report(root: &std::path::Path, files: &[&str]) -> Result<Vec<String>> {
    let (rows, problems) = unsafe_rows(root, files)?;
    let sum = |pre: &str| {
        rows.iter()
            .filter(|(f, _)| f.starts_with(pre))
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    println!("unsafe lines per file:");
    for (f, n) in &rows {
        println!("  {n:5}  {f}");
    }
    println!(
        "  totals: abstractions (kernel-patches) {}, test-only SDIO simulator {}, driver (driver/kmod) {}",
        sum("kernel-patches/"),
        sum("driver/sdiosim/"),
        sum("driver/kmod/")
    );
    Ok(problems)
}

fn stubs(file: &str, text: &str) -> Vec<String> {
    // Built from pieces so that this file does not flag itself.
    let needles = [concat!("todo", "!("), concat!("unimplemented", "!(")];
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter(|(_, l)| needles.iter().any(|n| l.contains(n)))
        .map(|(i, _)| format!("{file}:{}: stub macro in Rust code", i + 1))
        .collect()
}

fn unsafe_without_safety(file: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let is_unsafe = code.contains("unsafe {") || code.trim_start().starts_with("unsafe impl");
        if !is_unsafe || code.contains('"') {
            continue;
        }
        if line.contains("SAFETY:") {
            continue;
        }
        // The contiguous run of comment/attribute lines just above.
        let documented = lines[..i]
            .iter()
            .rev()
            .take_while(|l| {
                let t = l.trim_start();
                t.starts_with("//") || t.starts_with("#[")
            })
            .any(|l| l.contains("SAFETY:"));
        if !documented {
            out.push(format!(
                "{file}:{}: `unsafe` without a `// SAFETY:` comment above it",
                i + 1
            ));
        }
    }
    out
}

fn private_addresses(file: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for word in line.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
            let parts: Vec<&str> = word.trim_matches('.').split('.').collect();
            if parts.len() != 4 {
                continue;
            }
            let Ok(o) = parts
                .iter()
                .map(|p| p.parse::<u8>())
                .collect::<Result<Vec<u8>, _>>()
            else {
                continue;
            };
            let private = o[0] == 10
                || (o[0] == 172 && (16..=31).contains(&o[1]))
                || (o[0] == 192 && o[1] == 168);
            if private {
                out.push(format!(
                    "{file}:{}: private-range address {word}: code may target only loopback or what it created; \
                     name real devices by host name",
                    i + 1
                ));
            }
        }
    }
    out
}

/// Any use of the core in a chip-model file (code lines, not comments).
fn uses_core(file: &str, text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or("");
            code.contains("bes2600_core")
        })
        .map(|(i, _)| {
            format!(
                "{file}:{}: the chip model uses bes2600-core (it must build its side of the protocol itself)",
                i + 1
            )
        })
        .collect()
}

/// A core module must build as a module of another crate: its own
/// `forbid(unsafe_code)` and `super::` paths.
fn core_module_mountable(file: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !text.contains("#![forbid(unsafe_code)]") {
        out.push(format!("{file}: no `#![forbid(unsafe_code)]` of its own"));
    }
    for (i, l) in text.lines().enumerate() {
        let code = l.split("//").next().unwrap_or("");
        if code.contains("crate::") {
            out.push(format!(
                "{file}:{}: `crate::` path (the kernel crate's root is not lib.rs: use `super::`)",
                i + 1
            ));
        }
    }
    out
}

fn code_map_gaps(files: &[&str], architecture_md: &str) -> Vec<String> {
    let mut dirs: Vec<&str> = files
        .iter()
        .filter_map(|f| f.split_once('/').map(|(d, _)| d))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs.into_iter()
        .filter(|d| !NOT_IN_CODE_MAP.contains(d))
        .filter(|d| !architecture_md.contains(&format!("`{d}/")))
        .map(|d| format!("ARCHITECTURE.md: the code map does not mention `{d}/`"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stubs_but_not_comments() {
        let src = format!(
            "fn a() {{ {}\"x\") }}\n// {}\n",
            concat!("todo", "!("),
            concat!("todo", "!()")
        );
        assert_eq!(
            stubs("a.rs", &src),
            vec!["a.rs:1: stub macro in Rust code".to_string()]
        );
    }

    #[test]
    fn unsafe_needs_a_safety_comment_in_the_block_above() {
        let bad = "fn f() {\n    // reads the pointer\n    let x = unsafe { *p };\n}\n";
        assert_eq!(unsafe_without_safety("b.rs", bad).len(), 1);
        let good = "fn f() {\n    // SAFETY: p is valid for reads.\n    // (see caller)\n    let x = unsafe { *p };\n}\n";
        assert!(unsafe_without_safety("g.rs", good).is_empty());
        let far = "// SAFETY: stale\nfn f() {\n    let x = unsafe { *p };\n}\n";
        assert_eq!(
            unsafe_without_safety("f.rs", far).len(),
            1,
            "a SAFETY comment must be directly above"
        );
        let imp =
            "// SAFETY: Counting forwards to System.\n#[allow(x)]\nunsafe impl Sync for T {}\n";
        assert!(unsafe_without_safety("i.rs", imp).is_empty());
    }

    #[test]
    fn unsafe_is_counted_in_code_not_comments_and_in_patch_additions() {
        assert_eq!(
            unsafe_lines("let x = unsafe { 1 };\n// unsafe here\nlet unsafe_ok = 1;\n"),
            1
        );
        let patch = "--- a/rust/kernel/x.rs\n+++ b/rust/kernel/x.rs\n@@ -1 +1,2 @@\n keep unsafe\n+    unsafe { f() };\n--- a/rust/helpers/y.c\n+++ b/rust/helpers/y.c\n+int unsafe;\n";
        let adds = patch_rust_additions(patch);
        assert_eq!(adds.len(), 1);
        assert_eq!(unsafe_lines(&adds[0].1), 1);
    }

    #[test]
    fn private_ranges_only() {
        // Built at run time so that this file holds no such literal itself.
        let (a, b, c) = (
            format!("192.{}.1.20", 168),
            format!("172.{}.0.1", 20),
            format!("{}.1.2.3", 10),
        );
        let src = format!(
            "let a = \"127.0.0.1\"; let b = \"{a}\"; let c = \"{b}\"; let d = \"172.32.0.1\";\nlet e = \"{c}\"; let v = \"1.2.3\";"
        );
        let found = private_addresses("c.rs", &src);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains(&a) && found[1].contains(&b) && found[2].contains(&c));
    }

    #[test]
    fn the_chip_model_may_not_use_the_core() {
        let bad = "// bes2600_core is the host side\nuse bes2600_core::sdio::TxBatch;\n";
        assert_eq!(uses_core("driver/sim/src/chip.rs", bad).len(), 1);
        assert!(uses_core("w.rs", "use crate::wire;\n// not bes2600_core\n").is_empty());
    }

    #[test]
    fn core_modules_are_mountable() {
        let bad = "use crate::wsm;\n";
        assert_eq!(core_module_mountable("m.rs", bad).len(), 2);
        let good = "#![forbid(unsafe_code)]\nuse super::wsm; // not crate::x\n";
        assert!(core_module_mountable("m.rs", good).is_empty());
    }

    #[test]
    fn code_map_names_every_top_level_dir() {
        let files = ["lab/src/lib.rs", "newthing/x.rs", ".ci/run", "README.md"];
        let arch = "### `lab/`\n";
        assert_eq!(
            code_map_gaps(&files, arch),
            vec!["ARCHITECTURE.md: the code map does not mention `newthing/`".to_string()]
        );
    }
}
