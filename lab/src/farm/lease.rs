//! Holding a place: reserve, acquire, release, and what a killed besser
//! leaves behind.
//!
//! A place is always taken through a reservation (`name=PLACE` or the
//! tags): labgrid queues reservations, so two besser runs asking for one
//! place are served in order. While it waits, a `labgrid-client wait`
//! child keeps the reservation fresh (an unpolled one expires after 60 s)
//! and besser prints the holder and the queue ahead. The acquisition lives
//! in the coordinator, not in besser: a lease file (`<lease_dir>/<place>.json`:
//! pid, token, since) lets the next run on this host release what a killed
//! besser still holds, and say whose it was.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::client::{FarmError, Labgrid, Reservation};

/// What to hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// `--place NAME`.
    Place(String),
    /// `--labgrid-tags board=pinetab2` (any place that has them).
    Tags(Vec<String>),
}

impl Want {
    fn filter(&self) -> Vec<String> {
        match self {
            Want::Place(p) => vec![format!("name={p}")],
            Want::Tags(t) => t.clone(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Want::Place(p) => format!("place {p}"),
            Want::Tags(t) => format!("a place tagged {}", t.join(" ")),
        }
    }
}

/// What a lease file says (one per place this host's besser holds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFile {
    pub place: String,
    pub token: String,
    pub pid: u32,
    pub identity: String,
    pub since_unix: u64,
}

fn lease_path(dir: &Path, place: &str) -> PathBuf {
    dir.join(format!("{place}.json"))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn pid_alive(pid: u32) -> bool {
    pid != 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// A held place; released on [`Lease::release`], on drop, and so on every
/// way out of besser but a kill (see the module doc for that one).
pub struct Lease {
    lg: Labgrid,
    pub place: String,
    token: String,
    file: PathBuf,
    released: bool,
}

/// How long a reservation may stay allocated before we must acquire (the
/// coordinator expires it after 60 s without a poll).
const POLL: Duration = Duration::from_secs(1);

impl Lease {
    /// Reserves and acquires what `want` names. Without `wait`, a place
    /// held by someone else is an error naming the holder; with it, the
    /// run queues and prints who holds the place and how many wait ahead.
    pub fn take(
        lg: &Labgrid,
        want: &Want,
        wait: bool,
        lease_dir: &Path,
        say: &mut dyn FnMut(&str),
    ) -> Result<Lease> {
        std::fs::create_dir_all(lease_dir)
            .with_context(|| format!("lease directory {}", lease_dir.display()))?;
        let places = lg.places()?;
        if let Want::Place(p) = want {
            if !places.iter().any(|x| x == p) {
                return Err(FarmError::NoSuchPlace { place: p.clone() }.into());
            }
            let info = lg.show(p)?;
            match info.acquired.as_deref() {
                Some(h) if h == lg.identity() => {
                    recover_own(lg, p, lease_dir, wait, info.changed.as_deref(), say)?
                }
                Some(h) if !wait => {
                    return Err(FarmError::Held {
                        place: p.clone(),
                        holder: h.to_string(),
                        since: info.changed.clone(),
                    }
                    .into())
                }
                _ => {}
            }
        }
        let token = lg.reserve(&want.filter())?;
        let place = match wait_allocated(lg, &token, want, wait, say) {
            Ok(p) => p,
            Err(e) => {
                let _ = lg.cancel(&token);
                return Err(e);
            }
        };
        let acquired = lg.acquire_reserved(&token).inspect_err(|_| {
            let _ = lg.cancel(&token);
        })?;
        debug_assert_eq!(acquired, place);
        let file = lease_path(lease_dir, &acquired);
        let lf = LeaseFile {
            place: acquired.clone(),
            token: token.clone(),
            pid: std::process::id(),
            identity: lg.identity(),
            since_unix: now_unix(),
        };
        crate::rundir::write_atomic(&file, serde_json::to_string_pretty(&lf)?.as_bytes())?;
        say(&format!(
            "{}: acquired as {} (reservation {token})",
            acquired,
            lg.identity()
        ));
        Ok(Lease {
            lg: lg.clone(),
            place: acquired,
            token,
            file,
            released: false,
        })
    }

    /// Releases the place and drops the reservation and the lease file.
    pub fn release(&mut self) -> Result<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let r = self.lg.release(&self.place, false);
        let _ = self.lg.cancel(&self.token);
        let _ = std::fs::remove_file(&self.file);
        r.with_context(|| format!("releasing place {}", self.place))
    }

    /// Whether the coordinator still has the place acquired by us: `Err`
    /// says why not (unreachable, released, taken over).
    pub fn check(&self) -> std::result::Result<(), String> {
        match self.lg.show(&self.place) {
            Ok(i) if i.acquired.as_deref() == Some(&self.lg.identity()) => Ok(()),
            Ok(i) => Err(format!(
                "lost place {}: the coordinator says it is {}",
                self.place,
                i.acquired
                    .map(|h| format!("held by {h}"))
                    .unwrap_or_else(|| "free".into())
            )),
            Err(e) => Err(format!("lost place {}: {e}", self.place)),
        }
    }

    /// Checks the lease every `every` until `stop` is set; the first failed
    /// check's reason goes into `lost` (a ramp stops after the rep in flight).
    pub fn watch(
        &self,
        every: Duration,
        lost: Arc<Mutex<Option<String>>>,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<()> {
        let me = Lease {
            lg: self.lg.clone(),
            place: self.place.clone(),
            token: self.token.clone(),
            file: self.file.clone(),
            // A watcher never releases.
            released: true,
        };
        std::thread::spawn(move || {
            let mut next = Instant::now() + every;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                if Instant::now() < next {
                    continue;
                }
                next = Instant::now() + every;
                if let Err(why) = me.check() {
                    *lost.lock().expect("not poisoned") = Some(why);
                    return;
                }
            }
        })
    }

    /// A release that can run from a signal handler's thread (the CLI's
    /// second Ctrl-C exits at once, without unwinding to the drop).
    pub fn releaser(&self) -> impl Fn() + Send + Sync + 'static {
        let (lg, place, token, file) = (
            self.lg.clone(),
            self.place.clone(),
            self.token.clone(),
            self.file.clone(),
        );
        move || {
            let _ = lg.release(&place, false);
            let _ = lg.cancel(&token);
            let _ = std::fs::remove_file(&file);
        }
    }

    pub fn labgrid(&self) -> &Labgrid {
        &self.lg
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// The place is acquired under our own identity: by another besser still
/// running (a holder like any other), or by one that was killed (released,
/// and said so).
fn recover_own(
    lg: &Labgrid,
    place: &str,
    lease_dir: &Path,
    wait: bool,
    since: Option<&str>,
    say: &mut dyn FnMut(&str),
) -> Result<()> {
    let path = lease_path(lease_dir, place);
    let lf: Option<LeaseFile> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match lf {
        // Another besser of ours, alive: queue behind it with --wait.
        Some(l) if pid_alive(l.pid) && l.pid != std::process::id() => {
            if !wait {
                return Err(FarmError::Held {
                    place: place.to_string(),
                    holder: format!("{} (besser pid {})", l.identity, l.pid),
                    since: since.map(str::to_string),
                }
                .into());
            }
        }
        Some(l) => {
            say(&format!(
                "place {place} was left acquired by a besser that is gone (pid {}, {}, {} s ago): releasing it",
                l.pid,
                l.identity,
                now_unix().saturating_sub(l.since_unix)
            ));
            lg.release(place, false)?;
            let _ = lg.cancel(&l.token);
            let _ = std::fs::remove_file(&path);
        }
        None => bail!(
            "place {place} is acquired as {} but no besser on this host holds it (no lease file {}): \
             another tool of yours has it; `labgrid-client -p {place} release` if it is stale",
            lg.identity(),
            path.display()
        ),
    }
    Ok(())
}

/// Polls until the reservation is allocated; the place's name.
fn wait_allocated(
    lg: &Labgrid,
    token: &str,
    want: &Want,
    wait: bool,
    say: &mut dyn FnMut(&str),
) -> Result<String> {
    let mut waiter: Option<Child> = None;
    let mut last_said = String::new();
    let result = loop {
        let all = lg.reservations()?;
        let Some(mine) = all.iter().find(|r| r.token == token) else {
            break Err(anyhow::anyhow!(
                "reservation {token} for {} vanished (cancelled by someone, or the coordinator restarted)",
                want.describe()
            ));
        };
        match mine.state.as_str() {
            "allocated" | "acquired" => match &mine.place {
                Some(p) => break Ok(p.clone()),
                None => {
                    break Err(anyhow::anyhow!(
                        "reservation {token} is {} without a place",
                        mine.state
                    ))
                }
            },
            "waiting" => {}
            other => {
                break Err(anyhow::anyhow!(
                    "reservation {token} for {} is {other}",
                    want.describe()
                ))
            }
        }
        if !wait {
            let held = holders(lg, want, &all);
            break Err(anyhow::anyhow!(
                "{} is not free{} (add --wait to queue for it)",
                want.describe(),
                held
            ));
        }
        if waiter.is_none() {
            waiter = Some(lg.spawn_wait(token)?);
        }
        let ahead = queue_ahead(&all, mine);
        let line = format!(
            "waiting for {}{}; {ahead} ahead in the queue",
            want.describe(),
            holders(lg, want, &all)
        );
        if line != last_said {
            say(&line);
            last_said = line;
        }
        std::thread::sleep(POLL);
    };
    if let Some(mut w) = waiter {
        let _ = w.kill();
        let _ = w.wait();
    }
    result
}

/// Reservations queued before `mine` for the same filter.
pub fn queue_ahead(all: &[Reservation], mine: &Reservation) -> usize {
    all.iter()
        .take_while(|r| r.token != mine.token)
        .filter(|r| r.state == "waiting" && r.filter == mine.filter)
        .count()
}

/// `: held by H since S` for a named place (tags: the places allocated to
/// others with the same filter).
fn holders(lg: &Labgrid, want: &Want, all: &[Reservation]) -> String {
    match want {
        Want::Place(p) => match lg.show(p) {
            Ok(i) => i
                .acquired
                .map(|h| {
                    format!(
                        ": held by {h}{}",
                        i.changed.map(|c| format!(" since {c}")).unwrap_or_default()
                    )
                })
                .unwrap_or_default(),
            Err(_) => String::new(),
        },
        Want::Tags(_) => {
            let f = want.filter().join(" ");
            let held: Vec<String> = all
                .iter()
                .filter(|r| r.filter.as_deref() == Some(f.as_str()) && r.place.is_some())
                .map(|r| format!("{} by {}", r.place.as_deref().unwrap_or("?"), r.owner))
                .collect();
            if held.is_empty() {
                String::new()
            } else {
                format!(": held: {}", held.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(token: &str, state: &str, filter: &str) -> Reservation {
        Reservation {
            token: token.into(),
            owner: "h/u".into(),
            state: state.into(),
            filter: Some(filter.into()),
            place: None,
        }
    }

    #[test]
    fn the_queue_ahead_counts_only_earlier_waiters_for_the_same_place() {
        let all = vec![
            r("A", "acquired", "name=pa"),
            r("B", "waiting", "name=pa"),
            r("C", "waiting", "name=other"),
            r("D", "waiting", "name=pa"),
            r("E", "waiting", "name=pa"),
        ];
        assert_eq!(queue_ahead(&all, &all[3]), 1);
        assert_eq!(queue_ahead(&all, &all[1]), 0);
        assert_eq!(queue_ahead(&all, &all[4]), 2);
    }

    #[test]
    fn a_place_is_asked_for_by_name_tags_as_given() {
        assert_eq!(Want::Place("pa".into()).filter(), vec!["name=pa"]);
        let t = Want::Tags(vec!["board=pinetab2".into()]);
        assert_eq!(t.filter(), vec!["board=pinetab2"]);
        assert_eq!(t.describe(), "a place tagged board=pinetab2");
    }
}
