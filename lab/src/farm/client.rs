//! `labgrid-client`, one process per call, and readers of what it prints.
//!
//! Every call names the coordinator (`-x`) and besser's identity
//! (`LG_HOSTNAME`/`LG_USERNAME`, which the coordinator checks on acquire and
//! release), so the identity is known here, not guessed. The readers take
//! labgrid 26.0.1's output as it was printed on this machine (see the tests).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde::Deserialize;

/// What went wrong talking to the farm, with what the user needs next.
#[derive(Debug, thiserror::Error)]
pub enum FarmError {
    #[error("labgrid coordinator at {address} is unreachable ({detail}); set it with --coordinator or LG_COORDINATOR")]
    Unreachable { address: String, detail: String },
    #[error("place {place} is held by {holder}{} (add --wait to queue for it)", since.as_ref().map(|s| format!(" since {s}")).unwrap_or_default())]
    Held {
        place: String,
        holder: String,
        since: Option<String>,
    },
    #[error("labgrid has no place {place} (`cargo xtask lab farm status` lists them)")]
    NoSuchPlace { place: String },
    #[error("labgrid-client {args}: {message}")]
    Client { args: String, message: String },
    #[error("labgrid-client ({}): {source}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The labgrid CLI as besser calls it.
#[derive(Clone, Debug)]
pub struct Labgrid {
    /// The `labgrid-client` binary.
    pub client: PathBuf,
    /// `host:port` of the coordinator.
    pub coordinator: String,
    pub hostname: String,
    pub username: String,
}

impl Labgrid {
    /// The client in `bin_dir` (a venv's `bin/`), speaking to `coordinator`
    /// as this host's name and `$USER`.
    pub fn new(bin_dir: &std::path::Path, coordinator: &str) -> Labgrid {
        let hostname = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let username = std::env::var("LG_USERNAME")
            .or_else(|_| std::env::var("USER"))
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "root".into());
        Labgrid {
            client: bin_dir.join("labgrid-client"),
            coordinator: coordinator.to_string(),
            hostname: std::env::var("LG_HOSTNAME").unwrap_or(hostname),
            username,
        }
    }

    /// `host/user`, as the coordinator names a holder.
    pub fn identity(&self) -> String {
        format!("{}/{}", self.hostname, self.username)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.client);
        c.arg("-x")
            .arg(&self.coordinator)
            .args(args)
            .env("LG_HOSTNAME", &self.hostname)
            .env("LG_USERNAME", &self.username)
            .env_remove("LG_TOKEN")
            .env_remove("LG_PLACE")
            .stdin(Stdio::null());
        c
    }

    /// Runs one call; its stdout, or the error its stderr names.
    pub fn run(&self, args: &[&str]) -> Result<String, FarmError> {
        let out = self
            .command(args)
            .output()
            .map_err(|source| FarmError::Spawn {
                path: self.client.clone(),
                source,
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        Err(classify_error(
            &self.coordinator,
            &args.join(" "),
            &String::from_utf8_lossy(&out.stderr),
        ))
    }

    pub fn show(&self, place: &str) -> Result<PlaceInfo, FarmError> {
        let text = self.run(&["-p", place, "show"])?;
        parse_show(&text).ok_or_else(|| FarmError::Client {
            args: format!("-p {place} show"),
            message: format!("output not understood: {}", first_line(&text)),
        })
    }

    /// Every place's name.
    pub fn places(&self) -> Result<Vec<String>, FarmError> {
        Ok(parse_places(&self.run(&["places"])?))
    }

    /// Queues a reservation for `filter` (`name=PLACE` or `key=value …`);
    /// its token.
    pub fn reserve(&self, filter: &[String]) -> Result<String, FarmError> {
        let mut args = vec!["reserve", "--shell"];
        args.extend(filter.iter().map(String::as_str));
        let out = self.run(&args)?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("export LG_TOKEN="))
            .map(str::to_string)
            .ok_or_else(|| FarmError::Client {
                args: args.join(" "),
                message: format!("no token in {:?}", first_line(&out)),
            })
    }

    pub fn reservations(&self) -> Result<Vec<Reservation>, FarmError> {
        Ok(parse_reservations(&self.run(&["reservations"])?))
    }

    /// `labgrid-client wait TOKEN`, running: it polls the coordinator once a
    /// second (which keeps a waiting reservation from expiring) and exits
    /// when the reservation is no longer waiting.
    pub fn spawn_wait(&self, token: &str) -> Result<Child, FarmError> {
        self.command(&["wait", token])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| FarmError::Spawn {
                path: self.client.clone(),
                source,
            })
    }

    /// Acquires the place reserved by `token`; the place's name.
    pub fn acquire_reserved(&self, token: &str) -> Result<String, FarmError> {
        let plus = format!("+{token}");
        let out = self.run(&["-p", &plus, "acquire"])?;
        out.lines()
            .find_map(|l| l.trim().strip_prefix("acquired place "))
            .map(|p| p.trim().to_string())
            .ok_or_else(|| FarmError::Client {
                args: format!("-p {plus} acquire"),
                message: format!("output not understood: {}", first_line(&out)),
            })
    }

    pub fn release(&self, place: &str, kick: bool) -> Result<(), FarmError> {
        let mut args = vec!["-p", place, "release"];
        if kick {
            args.push("--kick");
        }
        self.run(&args).map(drop)
    }

    pub fn cancel(&self, token: &str) -> Result<(), FarmError> {
        self.run(&["cancel-reservation", token]).map(drop)
    }

    /// The acquired place's resources (`labgrid-client env`, YAML).
    pub fn resources(&self, place: &str) -> Result<PlaceResources, FarmError> {
        let text = self.run(&["-p", place, "env"])?;
        let err = |message| FarmError::Client {
            args: format!("-p {place} env"),
            message,
        };
        Ok(PlaceResources {
            services: parse_env(&text, place).map_err(err)?,
            classes: env_classes(&text, place).map_err(err)?,
        })
    }

    /// A shell command that power-cycles `place` through labgrid (the place
    /// must be acquired by this identity, as it is while besser holds it).
    pub fn power_cycle_command(&self, place: &str) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        format!(
            "LG_HOSTNAME={} LG_USERNAME={} {} -x {} -p {} power cycle",
            q(&self.hostname),
            q(&self.username),
            q(&self.client.display().to_string()),
            q(&self.coordinator),
            q(place)
        )
    }

    pub fn set_comment(&self, place: &str, comment: &str) -> Result<(), FarmError> {
        self.run(&["-p", place, "set-comment", comment]).map(drop)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("(nothing)")
}

/// What a failed call's stderr means.
pub fn classify_error(coordinator: &str, args: &str, stderr: &str) -> FarmError {
    let text = stderr.trim();
    if text.contains("Could not connect to coordinator")
        || text.contains("coordinator is unavailable")
    {
        let detail = text
            .lines()
            .find_map(|l| l.split("coordinator is unavailable: ").nth(1))
            .unwrap_or("connection failed")
            .trim()
            .to_string();
        return FarmError::Unreachable {
            address: coordinator.to_string(),
            detail,
        };
    }
    // "Place pt2 is already acquired by hostA/alice. To work simultaneously, …"
    if let Some(rest) = text.split("is already acquired by ").nth(1) {
        let holder = rest.split(['.', ' ']).next().unwrap_or("?").to_string();
        let place = text
            .split("Place ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        return FarmError::Held {
            place,
            holder,
            since: None,
        };
    }
    if text.contains("matches nothing")
        || text.contains("pattern") && text.contains("matches nothing")
    {
        return FarmError::NoSuchPlace {
            place: args.to_string(),
        };
    }
    let message = text
        .lines()
        .rev()
        .find(|l| l.contains("Error:"))
        .or_else(|| text.lines().last())
        .unwrap_or("failed without a message")
        .trim()
        .to_string();
    FarmError::Client {
        args: args.to_string(),
        message,
    }
}

/// A place, as `labgrid-client -p P show` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaceInfo {
    pub name: String,
    pub comment: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// `host/user`, or `None` when free.
    pub acquired: Option<String>,
    /// When the place last changed (labgrid's local time): the nearest
    /// thing to "held since" it prints.
    pub changed: Option<String>,
    pub reservation: Option<String>,
}

/// Reads the `Place 'NAME':` block of `show` (the resource dumps after it
/// are skipped). `None` when there is no such block.
pub fn parse_show(text: &str) -> Option<PlaceInfo> {
    let mut lines = text.lines();
    let head = lines.find(|l| l.starts_with("Place '"))?;
    let mut p = PlaceInfo {
        name: head
            .trim_start_matches("Place '")
            .trim_end_matches("':")
            .to_string(),
        ..PlaceInfo::default()
    };
    for l in lines {
        if !l.starts_with("  ") {
            break;
        }
        let Some((k, v)) = l
            .trim()
            .split_once(": ")
            .or_else(|| l.trim().strip_suffix(':').map(|k| (k, "")))
        else {
            continue;
        };
        let v = v.trim();
        match k {
            "comment" => p.comment = Some(v.to_string()),
            "tags" => {
                for t in v.split(", ") {
                    if let Some((a, b)) = t.split_once('=') {
                        p.tags.insert(a.to_string(), b.to_string());
                    }
                }
            }
            "acquired" if v != "None" && !v.is_empty() => p.acquired = Some(v.to_string()),
            "changed" => p.changed = Some(v.to_string()),
            "reservation" => p.reservation = Some(v.to_string()),
            _ => {}
        }
    }
    Some(p)
}

/// Place names from `labgrid-client places` (`name (aliases)   comment`).
pub fn parse_places(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// One reservation, as `labgrid-client reservations` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reservation {
    pub token: String,
    pub owner: String,
    /// `waiting`, `allocated`, `acquired`, `expired` or `invalid`.
    pub state: String,
    /// The `main` filter (`name=pt2`).
    pub filter: Option<String>,
    /// The place it was given.
    pub place: Option<String>,
}

/// The blocks of `reservations`, in its order (priority, then age: the queue).
pub fn parse_reservations(text: &str) -> Vec<Reservation> {
    let mut out: Vec<Reservation> = Vec::new();
    let mut section = "";
    for l in text.lines() {
        if l.starts_with("Reservation '") {
            out.push(Reservation::default());
            section = "";
            continue;
        }
        let Some(r) = out.last_mut() else { continue };
        let t = l.trim();
        match t.split_once(':') {
            Some(("filters", "")) => section = "filters",
            Some(("allocations", "")) => section = "allocations",
            Some(("owner", v)) => r.owner = v.trim().to_string(),
            Some(("token", v)) => r.token = v.trim().to_string(),
            Some(("state", v)) => r.state = v.trim().to_string(),
            Some(("main", v)) if section == "filters" => r.filter = Some(v.trim().to_string()),
            Some(("main", v)) if section == "allocations" => r.place = Some(v.trim().to_string()),
            _ => {}
        }
    }
    out
}

/// A `NetworkService` of a place: the wired link (`NetworkService`, the
/// default name) or the data link (named `data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub username: String,
}

#[derive(Deserialize)]
struct EnvFile {
    targets: BTreeMap<String, EnvTarget>,
}
#[derive(Deserialize)]
struct EnvTarget {
    #[serde(default)]
    resources: Vec<BTreeMap<String, EnvResource>>,
}
#[derive(Deserialize)]
struct EnvResource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    username: Option<String>,
}

/// A place's resources: its `NetworkService`s and every resource class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlaceResources {
    pub services: Vec<Service>,
    pub classes: Vec<String>,
}

impl PlaceResources {
    /// Whether labgrid can power-cycle the place (`labgrid-client power`).
    pub fn has_power(&self) -> bool {
        self.classes
            .iter()
            .any(|c| c.ends_with("PowerPort") || c == "PDUDaemonPort")
    }
}

/// Every resource class of `labgrid-client -p P env`, in order.
pub fn env_classes(text: &str, place: &str) -> Result<Vec<String>, String> {
    let f: BTreeMap<String, BTreeMap<String, serde_norway::Value>> =
        serde_norway::from_str(text).map_err(|e| format!("YAML not understood: {e}"))?;
    let targets = f.get("targets").ok_or("no targets in the output")?;
    let t = targets
        .get(place)
        .or_else(|| targets.values().next())
        .ok_or("no target in the output")?;
    let mut out = Vec::new();
    if let Some(list) = t.get("resources").and_then(|r| r.as_sequence()) {
        for r in list {
            if let Some(m) = r.as_mapping() {
                out.extend(m.keys().filter_map(|k| k.as_str().map(str::to_string)));
            }
        }
    }
    Ok(out)
}

/// The `NetworkService`s of `labgrid-client -p P env` (other classes skipped).
pub fn parse_env(text: &str, place: &str) -> Result<Vec<Service>, String> {
    let f: EnvFile =
        serde_norway::from_str(text).map_err(|e| format!("YAML not understood: {e}"))?;
    let t = f
        .targets
        .get(place)
        .or_else(|| f.targets.values().next())
        .ok_or_else(|| "no target in the output".to_string())?;
    let mut out = Vec::new();
    for r in &t.resources {
        for (cls, res) in r {
            if cls != "NetworkService" {
                continue;
            }
            let name = res.name.clone().unwrap_or_else(|| "NetworkService".into());
            let address = res
                .address
                .clone()
                .ok_or_else(|| format!("NetworkService {name} has no address"))?;
            out.push(Service {
                name,
                address,
                port: res.port.unwrap_or(22),
                username: res.username.clone().unwrap_or_else(|| "root".into()),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // What labgrid-client 26.0.1 printed here (trimmed of resource dumps).
    const SHOW_HELD: &str = "Place 'pt2':
  aliases: ptab
  comment: besser: qemu-x86_64-release, 20261202T005301Z-ramp
  tags: board=pinetab2, lab=desk
  matches:
    */pinetab2-1/NetworkService
  acquired: hostA/alice
  acquired resources:
    exp1/pinetab2-1/NetworkService/NetworkService
  created: 2026-12-02 00:30:55.767681
  changed: 2026-12-02 00:31:13.370461
  reservation: DQKPHMBR4Z
Acquired resource 'NetworkService' (exp1/pinetab2-1/NetworkService/NetworkService):
  {'acquired': 'pt2',
   'avail': True,
   'cls': 'NetworkService'}
";

    #[test]
    fn show_gives_holder_since_tags_and_comment() {
        let p = parse_show(SHOW_HELD).unwrap();
        assert_eq!(p.name, "pt2");
        assert_eq!(p.acquired.as_deref(), Some("hostA/alice"));
        assert_eq!(p.changed.as_deref(), Some("2026-12-02 00:31:13.370461"));
        assert_eq!(p.tags.get("board").map(String::as_str), Some("pinetab2"));
        assert_eq!(p.tags.len(), 2);
        assert_eq!(p.reservation.as_deref(), Some("DQKPHMBR4Z"));
        assert!(p.comment.unwrap().contains("qemu-x86_64-release"));
        let free = parse_show(
            "Place 'pa':\n  matches:\n    e1/g1/*\n  acquired: None\n  acquired resources:\n",
        )
        .unwrap();
        assert_eq!(free.acquired, None);
        assert!(parse_show("nothing here").is_none());
    }

    #[test]
    fn reservations_read_in_queue_order() {
        let text = "Reservation 'N5RHI8OJW9':
  owner: vm/root
  token: N5RHI8OJW9
  state: acquired
  filters:
    main: name=pa
  allocations:
    main: pa
  created: 2026-12-02 00:54:10.1
  timeout: 2026-12-02 00:55:10.1
Reservation 'VWNVOFY8G2':
  owner: vm/bob
  token: VWNVOFY8G2
  state: waiting
  filters:
    main: name=pa
  created: 2026-12-02 00:54:11.2
  timeout: 2026-12-02 00:55:11.2
";
        let r = parse_reservations(text);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].state, "acquired");
        assert_eq!(r[0].place.as_deref(), Some("pa"));
        assert_eq!(r[1].owner, "vm/bob");
        assert_eq!(r[1].filter.as_deref(), Some("name=pa"));
        assert_eq!(r[1].place, None);
    }

    #[test]
    fn env_gives_the_wired_and_the_data_service() {
        let text = "targets:
  pa:
    resources:
    - NetworkService:
        username: root
        address: 127.0.0.1
        port: 2222
    - NetworkService:
        name: data
        username: root
        address: 127.0.0.1
        port: 5001
    - NetworkSerialPort:
        host: 127.0.0.1
        port: 2224
";
        let s = parse_env(text, "pa").unwrap();
        let classes = env_classes(text, "pa").unwrap();
        assert_eq!(
            classes,
            ["NetworkService", "NetworkService", "NetworkSerialPort"]
        );
        let res = PlaceResources {
            services: s.clone(),
            classes,
        };
        assert!(!res.has_power());
        let mut powered = res.clone();
        powered.classes.push("PDUDaemonPort".into());
        assert!(powered.has_power());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "NetworkService");
        assert_eq!(s[0].port, 2222);
        assert_eq!(s[1].name, "data");
        assert!(parse_env("targets: [", "pa").unwrap_err().contains("YAML"));
    }

    #[test]
    fn errors_name_the_coordinator_or_the_holder() {
        let e = classify_error(
            "127.0.0.1:20499",
            "places",
            "ERROR              root: coordinator is unavailable: failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:20499: Failed to connect to remote host: Connection refused\nServer error: Error: Could not connect to coordinator\n",
        );
        let msg = e.to_string();
        assert!(matches!(e, FarmError::Unreachable { .. }));
        assert!(
            msg.contains("127.0.0.1:20499") && msg.contains("Connection refused"),
            "{msg}"
        );
        let e = classify_error(
            "c:1",
            "-p pt2 acquire",
            "labgrid-client: Error: Place pt2 is already acquired by hostA/alice. To work simultaneously, alice can execute 'labgrid-client -p pt2 allow hostB/bob' on hostA.",
        );
        match e {
            FarmError::Held { place, holder, .. } => {
                assert_eq!(place, "pt2");
                assert_eq!(holder, "hostA/alice");
            }
            other => panic!("{other:?}"),
        }
        let e = classify_error(
            "c:1",
            "-p x release",
            "labgrid-client: Error: place x is not acquired\n",
        );
        assert_eq!(
            e.to_string(),
            "labgrid-client -p x release: labgrid-client: Error: place x is not acquired"
        );
    }
}
