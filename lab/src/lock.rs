//! The machine-wide VM lock: at most one QEMU at a time on this machine.
//!
//! `flock(2)` on [`VM_LOCK_PATH`]. A command run under `flock /tmp/besser-vm.lock …`
//! already holds the lock through an ancestor process: we detect that from
//! `/proc/locks` and go on instead of waiting for ourselves.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};

pub const VM_LOCK_PATH: &str = "/tmp/besser-vm.lock";
/// Poll period while another process holds the lock.
const LOCK_POLL_MS: u64 = 500;
/// How long to wait for another VM user before giving up.
pub const VM_LOCK_WAIT_MAX_S: u64 = 3600;

/// A held lock (or a lock an ancestor holds for us). Released on drop.
pub struct VmLock {
    pub file: Option<File>,
}

impl VmLock {
    /// Takes the lock, waiting (with a progress spinner) while someone else holds it.
    pub fn acquire() -> Result<VmLock> {
        Self::acquire_at(Path::new(VM_LOCK_PATH))
    }

    pub fn acquire_at(path: &Path) -> Result<VmLock> {
        Self::acquire_within(path, Duration::from_secs(VM_LOCK_WAIT_MAX_S))
    }

    /// Takes the lock on `path`, waiting at most `wait_max` for another holder.
    pub fn acquire_within(path: &Path, wait_max: Duration) -> Result<VmLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening the VM lock {}", path.display()))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return Ok(VmLock { file: Some(file) });
        }
        if let Some(holder) = holder_pid(path) {
            if is_ancestor(holder) {
                return Ok(VmLock { file: None });
            }
        }
        let pb = crate::progress::spinner("waiting for the VM lock (another VM is running)");
        let t0 = Instant::now();
        loop {
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
                pb.finish_and_clear();
                return Ok(VmLock { file: Some(file) });
            }
            if let Some(h) = holder_pid(path) {
                pb.set_message(format!(
                    "waiting for the VM lock {} (held by pid {h}: {})",
                    path.display(),
                    cmdline(h)
                ));
            }
            if t0.elapsed() > wait_max {
                pb.finish_and_clear();
                bail!(
                    "the VM lock {} stayed busy for {:.1} s (held by pid {})",
                    path.display(),
                    wait_max.as_secs_f64(),
                    holder_pid(path)
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "?".into())
                );
            }
            std::thread::sleep(Duration::from_millis(LOCK_POLL_MS).min(wait_max));
        }
    }

    /// The locked file, to hand to a child (QEMU) that keeps the lock while it runs.
    pub fn fd(&self) -> Option<&File> {
        self.file.as_ref()
    }
}

/// The pid that holds a flock on `path`, from `/proc/locks`.
pub fn holder_pid(path: &Path) -> Option<u32> {
    let md = std::fs::metadata(path).ok()?;
    let ino = md.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    for l in locks.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"
        if f.len() >= 6 && f[1] == "FLOCK" {
            let dev_ino = f[5];
            if dev_ino
                .rsplit(':')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                == Some(ino)
            {
                return f[4].parse().ok();
            }
        }
    }
    None
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

fn is_ancestor(pid: u32) -> bool {
    let mut p = std::process::id();
    for _ in 0..64 {
        match parent_of(p) {
            Some(pp) if pp == pid => return true,
            Some(pp) if pp > 1 => p = pp,
            _ => return false,
        }
    }
    false
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .split('\0')
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_times_out_and_gets_it_once_freed() {
        let p = std::env::temp_dir().join(format!("besser-vm-lock-test-{}", std::process::id()));
        let first = VmLock::acquire_at(&p).unwrap();
        assert!(
            first.fd().is_some(),
            "the first holder holds the lock itself"
        );
        assert_eq!(holder_pid(&p), Some(std::process::id()));
        // Same process, another open file: flock conflicts, and we are not our
        // own ancestor, so the second caller waits and gives up.
        let t0 = Instant::now();
        let e = VmLock::acquire_within(&p, Duration::from_millis(300))
            .err()
            .expect("a second holder got a held lock");
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert!(e.to_string().contains("stayed busy for 0.3 s"), "{e}");
        drop(first);
        let second = VmLock::acquire_within(&p, Duration::from_millis(300)).unwrap();
        assert!(second.fd().is_some());
        drop(second);
        let _ = std::fs::remove_file(&p);
    }
}
