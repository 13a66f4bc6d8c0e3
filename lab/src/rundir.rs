//! Run directories: `<runs-dir>/<UTC time>-<label>/` with `run.json`, the raw
//! data of every rep, `rep-N.json`, `report.md`, `summary.json`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Writes a file atomically: a temporary file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    ));
    let mut f = fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time (UTC; civil-from-days, no time zone data).
pub fn utc_stamp(unix_s: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_s);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_human(unix_s: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix_s);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

fn civil(unix_s: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (unix_s / 86400) as i64;
    let secs = unix_s % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 { y + 1 } else { y },
        m,
        d,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
    )
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A label safe as part of a directory name.
pub fn sanitize_label(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "run".into()
    } else {
        s
    }
}

/// Creates a new run directory and proves it is writable, before anything
/// touches a device.
pub fn create_run_dir(runs_dir: &Path, label: &str, unix_s: u64) -> Result<PathBuf> {
    fs::create_dir_all(runs_dir).with_context(|| {
        format!(
            "cannot create the runs directory {} (nothing was run)",
            runs_dir.display()
        )
    })?;
    let dir = runs_dir.join(format!("{}-{}", utc_stamp(unix_s), sanitize_label(label)));
    if dir.exists() {
        bail!("run directory {} already exists", dir.display());
    }
    fs::create_dir(&dir).with_context(|| {
        format!(
            "cannot create the run directory {} (nothing was run)",
            dir.display()
        )
    })?;
    write_atomic(&dir.join(".writable"), b"").with_context(|| {
        format!(
            "run directory {} is not writable (nothing was run)",
            dir.display()
        )
    })?;
    fs::remove_file(dir.join(".writable"))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // 2026-05-07 21:08:51 UTC
        assert_eq!(utc_human(1_778_188_131), "2026-05-07 21:08:51 UTC");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn unwritable_runs_dir_is_an_error_naming_it() {
        let d = std::env::temp_dir().join(format!("besser-rundir-test-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let file = d.join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let e = create_run_dir(&file.join("runs"), "x", 0).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("not-a-dir/runs") && msg.contains("nothing was run"),
            "{msg}"
        );
        let ok = create_run_dir(&d.join("runs"), "my label", 0).unwrap();
        assert!(ok.ends_with("19700101T000000Z-my-label"));
        fs::remove_dir_all(&d).unwrap();
    }
}
