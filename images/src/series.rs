//! The patch series: `kernel-patches/series`, the patches it names, their
//! headers, and what GNU `patch` says when one does not apply.
//!
//! A series line names a `.patch` file or a directory of `.patch` files
//! (applied in name order), relative to the series file; `#` starts a comment.
//! Every patch starts with a header of `Key: value` lines (continuation lines
//! start with whitespace) before the first `diff`/`---`; `Subject:` (what it
//! changes) and `Why:` (what it fixes and why) are required.

use std::collections::BTreeSet;
use std::path::Path;

use crate::sha256_hex;

/// One patch of the series, loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Path relative to the series file's directory, e.g. `0001-foo.patch`.
    pub name: String,
    pub subject: String,
    pub why: String,
    pub sha256: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("{series}:{line}: `{entry}` does not exist")]
    Missing {
        series: String,
        line: usize,
        entry: String,
    },
    #[error("{series}:{line}: `{entry}` is neither a .patch file nor a directory")]
    NotAPatch {
        series: String,
        line: usize,
        entry: String,
    },
    #[error("{series}:{line}: `{entry}` is listed twice")]
    Duplicate {
        series: String,
        line: usize,
        entry: String,
    },
    #[error("{series}:{line}: directory `{entry}` contains no .patch files")]
    EmptyDir {
        series: String,
        line: usize,
        entry: String,
    },
    #[error("{patch}: header lacks `{field}:` (every patch says what it changes (Subject) and what it fixes and why (Why) before the diff)")]
    MissingHeader { patch: String, field: &'static str },
    #[error("{patch}: contains no diff (no `--- `/`+++ ` lines)")]
    NoDiff { patch: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Entries of a series file: `(line number, entry)`.
pub fn parse_series(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.split('#').next().unwrap_or("").trim();
            (!l.is_empty()).then(|| (i + 1, l.to_string()))
        })
        .collect()
}

/// The header fields of a patch (everything before the diff).
pub fn parse_header(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("diff ") || line.starts_with("--- ") || line.starts_with("Index:") {
            break;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = fields.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            if !k.is_empty() && !k.contains(' ') {
                fields.push((k.to_string(), v.trim().to_string()));
            }
        }
    }
    fields
}

/// Checks a patch's header and diff and makes a [`Patch`] of it.
pub fn make_patch(name: &str, text: String) -> Result<Patch, SeriesError> {
    let header = parse_header(&text);
    let field = |f: &'static str| {
        header
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case(f) && !v.is_empty())
            .map(|(_, v)| v.clone())
            .ok_or(SeriesError::MissingHeader {
                patch: name.to_string(),
                field: f,
            })
    };
    let subject = field("Subject")?;
    let why = field("Why")?;
    let has_diff =
        text.lines().any(|l| l.starts_with("--- ")) && text.lines().any(|l| l.starts_with("+++ "));
    if !has_diff {
        return Err(SeriesError::NoDiff {
            patch: name.to_string(),
        });
    }
    Ok(Patch {
        name: name.to_string(),
        subject,
        why,
        sha256: sha256_hex(text.as_bytes()),
        text,
    })
}

fn read(path: &Path) -> Result<String, SeriesError> {
    std::fs::read_to_string(path).map_err(|source| SeriesError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Loads `<dir>/series` and every patch it names, in order.
pub fn load_series(dir: &Path) -> Result<Vec<Patch>, SeriesError> {
    let series_path = dir.join("series");
    let series = series_path.display().to_string();
    let text = read(&series_path)?;
    let mut patches = Vec::new();
    let mut seen = BTreeSet::new();
    for (line, entry) in parse_series(&text) {
        if !seen.insert(entry.clone()) {
            return Err(SeriesError::Duplicate {
                series,
                line,
                entry,
            });
        }
        let path = dir.join(&entry);
        if path.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .map_err(|source| SeriesError::Io {
                    path: path.display().to_string(),
                    source,
                })?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".patch"))
                .collect();
            names.sort();
            if names.is_empty() {
                return Err(SeriesError::EmptyDir {
                    series,
                    line,
                    entry,
                });
            }
            for n in names {
                let text = read(&path.join(&n))?;
                patches.push(make_patch(&format!("{entry}/{n}"), text)?);
            }
        } else if path.is_file() && entry.ends_with(".patch") {
            patches.push(make_patch(&entry, read(&path)?)?);
        } else if path.exists() {
            return Err(SeriesError::NotAPatch {
                series,
                line,
                entry,
            });
        } else {
            return Err(SeriesError::Missing {
                series,
                line,
                entry,
            });
        }
    }
    Ok(patches)
}

/// What went wrong applying one patch, from GNU `patch`'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyProblem {
    /// `Hunk #N FAILED at L.`
    HunkFailed {
        file: String,
        hunk: usize,
        at_line: Option<usize>,
        /// The hunk's `@@ … @@` line from the patch, if found.
        header: Option<String>,
    },
    /// Any other complaint (missing file, already applied, …), verbatim.
    Other(String),
}

/// The `n`-th (1-based) hunk header of `file` in a unified diff.
pub fn hunk_header(patch_text: &str, file: &str, n: usize) -> Option<String> {
    let mut in_file = false;
    let mut count = 0;
    for line in patch_text.lines() {
        if let Some(target) = line.strip_prefix("+++ ") {
            let target = target.split('\t').next().unwrap_or(target).trim();
            let stripped = target.split_once('/').map(|(_, r)| r).unwrap_or(target);
            in_file = stripped == file || target == file;
            count = 0;
        } else if in_file && line.starts_with("@@ ") {
            count += 1;
            if count == n {
                return Some(line.to_string());
            }
        }
    }
    None
}

/// Reads GNU `patch`'s output (applying or `--dry-run`) into problems,
/// naming the hunk header from `patch_text` where it can.
pub fn parse_patch_output(output: &str, patch_text: &str) -> Vec<ApplyProblem> {
    let mut file = String::new();
    let mut problems = Vec::new();
    for line in output.lines() {
        let l = line.trim();
        if let Some(f) = l
            .strip_prefix("checking file ")
            .or_else(|| l.strip_prefix("patching file "))
        {
            file = f.trim().trim_matches('\'').to_string();
        } else if let Some(rest) = l.strip_prefix("Hunk #") {
            if let Some((num, tail)) = rest.split_once(' ') {
                if tail.starts_with("FAILED") {
                    let hunk: usize = num.parse().unwrap_or(0);
                    let at_line = tail
                        .strip_prefix("FAILED at ")
                        .and_then(|s| s.trim_end_matches('.').split_whitespace().next())
                        .and_then(|s| s.parse().ok());
                    problems.push(ApplyProblem::HunkFailed {
                        header: hunk_header(patch_text, &file, hunk),
                        file: file.clone(),
                        hunk,
                        at_line,
                    });
                }
            }
        } else if l.starts_with("can't find file")
            || l.contains("Reversed (or previously applied) patch detected")
            || l.contains("which already exists")
            || l.starts_with("patch: ****")
            || l.contains("malformed patch")
            || l.contains("Only garbage was found")
        {
            problems.push(ApplyProblem::Other(l.to_string()));
        }
    }
    problems
}

/// A patch of the series that does not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApplyError {
    pub patch: String,
    pub tree: String,
    pub problems: Vec<ApplyProblem>,
    /// `patch`'s output, for when no problem could be recognised in it.
    pub raw_output: String,
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "patch {} does not apply to {}:", self.patch, self.tree)?;
        if self.problems.is_empty() {
            for l in self.raw_output.lines() {
                writeln!(f, "  {l}")?;
            }
        }
        for p in &self.problems {
            match p {
                ApplyProblem::HunkFailed {
                    file,
                    hunk,
                    at_line,
                    header,
                } => {
                    write!(f, "  {file}: hunk #{hunk}")?;
                    if let Some(h) = header {
                        write!(f, " `{h}`")?;
                    }
                    write!(f, " FAILED")?;
                    if let Some(l) = at_line {
                        write!(f, " (expected near line {l})")?;
                    }
                    writeln!(f)?;
                }
                ApplyProblem::Other(s) => writeln!(f, "  {s}")?,
            }
        }
        Ok(())
    }
}

/// The bench's "change to one patch": edits one added line inside a hunk of
/// a `.c` file — the first one-line `/* … */` comment the patch adds — by
/// appending `note` inside the comment. Only a `+` line changes, so the hunk
/// header still counts right and the patch still applies; make rebuilds
/// that file. Returns the 1-based line number and the new patch text, or
/// `None` when the patch adds no such comment to a `.c` file.
pub fn touch_c_hunk_line(patch_text: &str, note: &str) -> Option<(usize, String)> {
    let mut in_c = false;
    let mut in_hunk = false;
    let mut hit = None;
    for (i, l) in patch_text.lines().enumerate() {
        if let Some(f) = l.strip_prefix("+++ ") {
            in_c = f.trim_end().ends_with(".c");
            in_hunk = false;
        } else if l.starts_with("@@ ") {
            in_hunk = true;
        } else if l.starts_with("diff ") || l.starts_with("--- ") {
            in_hunk = false;
        } else if in_c && in_hunk {
            let body = l.strip_prefix('+').map(str::trim);
            if let Some(b) = body {
                if b.starts_with("/*")
                    && b.ends_with("*/")
                    && b.len() > 4
                    && !b[2..b.len() - 2].contains("*/")
                {
                    hit = Some(i);
                    break;
                }
            }
        }
    }
    let n = hit?;
    let mut out = String::with_capacity(patch_text.len() + note.len() + 1);
    for (i, l) in patch_text.split_inclusive('\n').enumerate() {
        if i == n {
            let (line, eol) = match l.strip_suffix('\n') {
                Some(x) => (x, "\n"),
                None => (l, ""),
            };
            let cut = line.rfind("*/").expect("the line ends with */");
            out.push_str(line[..cut].trim_end());
            out.push_str(&format!(" {note} */{eol}"));
        } else {
            out.push_str(l);
        }
    }
    Some((n + 1, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_touches_one_line_inside_a_c_hunk() {
        let p = "Subject: x\n\
                 --- a/rust/bindings/bindings_helper.h\n\
                 +++ b/rust/bindings/bindings_helper.h\n\
                 @@ -1,1 +1,2 @@\n\
                 +/* not a .c file */\n\
                 --- /dev/null\n\
                 +++ b/rust/helpers/rcu.c\n\
                 @@ -0,0 +1,4 @@\n\
                 +// SPDX-License-Identifier: GPL-2.0\n\
                 +/*\n\
                 + * a block comment\n\
                 + */\n\
                 +/* Process-context RX delivery. */\n";
        let (line, out) = touch_c_hunk_line(p, "(bench)").unwrap();
        assert_eq!(line, 13);
        let changed: Vec<_> = p.lines().zip(out.lines()).filter(|(a, b)| a != b).collect();
        assert_eq!(
            changed,
            [(
                "+/* Process-context RX delivery. */",
                "+/* Process-context RX delivery. (bench) */"
            )]
        );
        assert_eq!(out.lines().count(), p.lines().count());
        assert!(touch_c_hunk_line("+++ b/x.c\n@@ -1 +1 @@\n+int x;\n", "n").is_none());
        // The real series has such a line (the bench depends on it).
        let real = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../kernel-patches/0001-rust-bindings-sdio-net-mac80211.patch"),
        )
        .unwrap();
        assert!(touch_c_hunk_line(&real, "(bench)").is_some());
    }

    const PATCH: &str = "From: x\nSubject: rust: add helpers\nWhy: the driver needs\n them\n\n\
        diff --git a/a.c b/a.c\n--- a/a.c\n+++ b/a.c\n@@ -1,3 +1,4 @@ int a;\n a\n+b\n c\n\
        @@ -10,3 +11,4 @@ int z;\n x\n+y\n z\n\
        diff --git a/d/b.h b/d/b.h\n--- a/d/b.h\n+++ b/d/b.h\n@@ -5,2 +5,3 @@\n p\n+q\n";

    #[test]
    fn series_entries_skip_comments() {
        assert_eq!(
            parse_series("# head\n\n0001-a.patch  # trailing\n  fixes/\n"),
            [(3, "0001-a.patch".to_string()), (4, "fixes/".to_string())]
        );
    }

    #[test]
    fn header_fields_with_continuations() {
        let p = make_patch("0001-a.patch", PATCH.to_string()).unwrap();
        assert_eq!(p.subject, "rust: add helpers");
        assert_eq!(p.why, "the driver needs them");
        assert_eq!(p.sha256.len(), 64);
    }

    #[test]
    fn patch_without_why_is_refused() {
        let e = make_patch("0002-b.patch", "Subject: s\n--- a/x\n+++ b/x\n".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "0002-b.patch: header lacks `Why:` (every patch says what it changes (Subject) and what it fixes and why (Why) before the diff)"
        );
        let e = make_patch("0003-c.patch", "Subject: s\nWhy: w\n".into()).unwrap_err();
        assert!(matches!(e, SeriesError::NoDiff { .. }));
    }

    #[test]
    fn hunk_headers_are_found_per_file() {
        assert_eq!(
            hunk_header(PATCH, "a.c", 2).as_deref(),
            Some("@@ -10,3 +11,4 @@ int z;")
        );
        assert_eq!(
            hunk_header(PATCH, "d/b.h", 1).as_deref(),
            Some("@@ -5,2 +5,3 @@")
        );
        assert_eq!(hunk_header(PATCH, "d/b.h", 2), None);
    }

    #[test]
    fn failed_hunks_are_named() {
        let out = "checking file a.c\nHunk #2 FAILED at 10.\n1 out of 2 hunks FAILED\nchecking file d/b.h\n";
        let problems = parse_patch_output(out, PATCH);
        let e = ApplyError {
            patch: "0001-a.patch".into(),
            tree: "linux-6.12.117".into(),
            problems,
            raw_output: out.into(),
        };
        assert_eq!(
            e.to_string(),
            "patch 0001-a.patch does not apply to linux-6.12.117:\n  a.c: hunk #2 `@@ -10,3 +11,4 @@ int z;` FAILED (expected near line 10)\n"
        );
    }

    #[test]
    fn missing_files_are_reported_verbatim() {
        let out = "can't find file to patch at input line 5\nPerhaps you used the wrong -p or --strip option?\n";
        assert_eq!(
            parse_patch_output(out, PATCH),
            [ApplyProblem::Other(
                "can't find file to patch at input line 5".into()
            )]
        );
    }
}
