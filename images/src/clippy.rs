//! Clippy's findings in a kernel build log, for the series' own Rust files.
//!
//! The kernel is built with `CLIPPY=1` (clippy-driver in place of rustc,
//! with the kernel's own lint set from its top-level `Makefile`), so every
//! abstraction the series adds is linted by the build that ships it. A
//! finding is a `warning:`/`error:` diagnostic whose primary location
//! (`--> FILE:LINE:COL`) is a file a patch of the series touches.

/// One diagnostic in a file of the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `warning: …` / `error: …`, as printed.
    pub message: String,
    /// `rust/kernel/….rs:LINE:COL`, relative to the source tree.
    pub location: String,
}

/// The Rust files (`+++ b/….rs`) a patch text touches.
pub fn rust_files(patch_text: &str) -> Vec<String> {
    let mut v: Vec<String> = patch_text
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| p.trim().to_string())
        .filter(|p| p.ends_with(".rs"))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The diagnostics of `log` located in one of `files` (paths relative to
/// the source tree; the log may print them absolute or `../`-relative).
pub fn findings(log: &str, files: &[String]) -> Vec<Finding> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let l = l.trim_end();
        if !(l.starts_with("warning:") || l.starts_with("error:")) {
            continue;
        }
        // The primary location follows the message, before the next one.
        let loc = lines[i + 1..]
            .iter()
            .take(4)
            .take_while(|n| !n.starts_with("warning:") && !n.starts_with("error:"))
            .find_map(|n| n.trim_start().strip_prefix("--> "));
        let Some(loc) = loc else { continue };
        let path = loc.split(':').next().unwrap_or("");
        if let Some(f) = files
            .iter()
            .find(|f| path == f.as_str() || path.ends_with(&format!("/{f}")))
        {
            out.push(Finding {
                message: l.to_string(),
                location: format!("{f}{}", &loc[path.len()..]),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape rustc/clippy print in a kernel build with `O=`.
    const LOG: &str = "\
  RUSTC L rust/kernel.o
warning: this `if` has identical blocks
   --> /root/.cache/besser/kernel/src/x/linux-source-6.12/rust/kernel/net/mac80211.rs:412:9
    |
412 |         if a { b } else { b }
    |
    = help: for further information visit https://rust-lang.github.io/rust-clippy
warning: unused import: `Foo`
  --> ../linux-source-6.12/rust/kernel/block/mq.rs:3:5
warning: 2 warnings emitted

error: unsafe block missing a safety comment
  --> rust/kernel/sdio.rs:77:5
";

    #[test]
    fn only_the_series_files_count() {
        let files = vec![
            "rust/kernel/net/mac80211.rs".to_string(),
            "rust/kernel/sdio.rs".to_string(),
        ];
        let f = findings(LOG, &files);
        assert_eq!(
            f,
            vec![
                Finding {
                    message: "warning: this `if` has identical blocks".into(),
                    location: "rust/kernel/net/mac80211.rs:412:9".into(),
                },
                Finding {
                    message: "error: unsafe block missing a safety comment".into(),
                    location: "rust/kernel/sdio.rs:77:5".into(),
                },
            ]
        );
        assert!(findings(LOG, &["rust/kernel/kthread.rs".to_string()]).is_empty());
    }

    #[test]
    fn the_series_rust_files_come_from_its_patches() {
        let p = "--- a/rust/kernel/net.rs\n+++ b/rust/kernel/net.rs\n@@ -1 +1 @@\n\
                 --- a/rust/helpers/sdio.c\n+++ b/rust/helpers/sdio.c\n\
                 +++ b/rust/kernel/net.rs\n";
        assert_eq!(rust_files(p), vec!["rust/kernel/net.rs".to_string()]);
    }
}
