//! Applying and reverting series patches in a source tree with GNU `patch`.
//!
//! Every patch is first tried with `--dry-run`, so a patch that does not
//! apply leaves the tree untouched and yields an [`ApplyError`] naming the
//! patch and the hunk. `--fuzz=0`: a patch applies exactly (offsets are
//! fine) or not at all.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::series::{parse_patch_output, ApplyError, Patch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Apply,
    Revert,
}

fn run_patch(
    tree: &Path,
    patch: &Patch,
    dir: Direction,
    dry_run: bool,
) -> std::io::Result<(bool, String)> {
    let mut cmd = Command::new("patch");
    cmd.current_dir(tree)
        .args([
            "-p1",
            "--batch",
            "--forward",
            "--fuzz=0",
            "--no-backup-if-mismatch",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if dir == Direction::Revert {
        cmd.arg("--reverse");
    }
    if dry_run {
        cmd.arg("--dry-run");
    }
    let mut child = cmd.spawn()?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(patch.text.as_bytes())?;
    let out = child.wait_with_output()?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error(transparent)]
    DoesNotApply(#[from] ApplyError),
    #[error("running patch(1) for {patch}: {source}")]
    Spawn {
        patch: String,
        #[source]
        source: std::io::Error,
    },
}

/// Applies (or reverts) one patch: dry run first, then for real.
/// `tree_name` is only used in the error message.
pub fn apply_patch(
    tree: &Path,
    tree_name: &str,
    patch: &Patch,
    dir: Direction,
) -> Result<(), PatchError> {
    let spawn = |source| PatchError::Spawn {
        patch: patch.name.clone(),
        source,
    };
    for dry_run in [true, false] {
        let (ok, out) = run_patch(tree, patch, dir, dry_run).map_err(spawn)?;
        if !ok {
            let what = match dir {
                Direction::Apply => patch.name.clone(),
                Direction::Revert => format!("{} (reverting)", patch.name),
            };
            return Err(ApplyError {
                patch: what,
                tree: tree_name.to_string(),
                problems: parse_patch_output(&out, &patch.text),
                raw_output: out,
            }
            .into());
        }
    }
    Ok(())
}
