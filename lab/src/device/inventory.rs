//! Device inventory: which devices the lab can drive, and how.
//!
//! A YAML file (default `lab/inventory.yaml` or `--inventory FILE`) maps a
//! device name to its wired SSH endpoint, its data endpoint and its limits.
//! Host names may be `~/.ssh/config` aliases (HostName, Port, User,
//! IdentityFile are taken from there). Bad YAML is an error naming the file,
//! line and column and what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Default "fresh chip" uptime window: the maintainers' ~13 min.
pub const FRESH_UPTIME_MAX_S_DEFAULT: f64 = 780.0;
pub const BOOT_TIMEOUT_S_DEFAULT: u64 = 180;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Only keys already in known_hosts are accepted.
    Strict,
    /// An unknown key is recorded and accepted; a changed key is still refused.
    TrustOnFirstUse,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Auth {
    /// A private key file.
    Key(PathBuf),
    /// The running ssh-agent (`SSH_AUTH_SOCK`).
    Agent,
}

/// The wired (fallback) link: SSH.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub auth: Auth,
    pub known_hosts: PathBuf,
    /// The name to look up in known_hosts if it differs from `host`
    /// (an ssh config alias is checked under its alias, as OpenSSH does).
    pub known_hosts_host: Option<String>,
    pub host_key_policy: HostKeyPolicy,
}

/// The link under test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataEndpoint {
    /// Where the host's sender connects (may differ from the device's own
    /// address because of NAT or a port forward).
    pub connect_host: String,
    pub connect_port: u16,
    /// The port the on-device listener binds.
    pub listen_port: u16,
    /// The data interface on the device (`wlan0`).
    pub interface: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reboot {
    /// Run this command on the device over SSH.
    Ssh { command: String },
    /// Run this command on the host (a power switch), argv split on spaces.
    Power { command: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub name: String,
    pub wired: SshEndpoint,
    pub data: DataEndpoint,
    pub fresh_uptime_max_s: f64,
    pub boot_timeout_s: u64,
    pub reboot: Reboot,
    /// A/B boot storage, for `cargo xtask flash` (`None`: not flashable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootStorage>,
}

/// Where a flashable device keeps its A/B slots and its U-Boot environment
/// (RAUC's convention, `besser_lab::flash`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootStorage {
    /// The boot partition's mount point on the device; the slots are its
    /// `A/` and `B/`.
    pub mount: String,
    /// What to mount there if it is not mounted (`/dev/vda1`), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The U-Boot environment: a device or file on the device, the offset
    /// of the environment in it and its size (U-Boot's `CONFIG_ENV_*`).
    pub env_path: String,
    pub env_offset: u64,
    pub env_size: u64,
    /// `CONFIG_SYS_REDUNDAND_ENVIRONMENT` (a flags byte after the CRC).
    #[serde(default)]
    pub env_redundant: bool,
}

// ---- the YAML form ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    devices: BTreeMap<String, DeviceYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceYaml {
    wired: WiredYaml,
    data: DataYaml,
    #[serde(default)]
    fresh_uptime_max_s: Option<f64>,
    #[serde(default)]
    boot_timeout_s: Option<u64>,
    #[serde(default)]
    reboot: Option<RebootYaml>,
    #[serde(default)]
    boot: Option<BootYaml>,
}

/// `boot: {mount: /boot, env: /dev/mtdblock0, env_offset: 0x4000000, env_size: 0x40000}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootYaml {
    mount: DevicePathYaml,
    #[serde(default)]
    device: Option<DevicePathYaml>,
    env: DevicePathYaml,
    env_offset: NumberYaml,
    env_size: NumberYaml,
    #[serde(default)]
    env_redundant: bool,
}

/// A path on the device that goes into its shell commands: absolute, and
/// only `A-Z a-z 0-9 / _ - .` (checked while the YAML is read).
struct DevicePathYaml(String);

impl<'de> Deserialize<'de> for DevicePathYaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_device_path(&s).map_err(serde::de::Error::custom)?;
        Ok(DevicePathYaml(s))
    }
}

/// A size or offset: an integer, or a string in decimal or `0x` hex.
struct NumberYaml(u64);

impl<'de> Deserialize<'de> for NumberYaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum N {
            Int(u64),
            Text(String),
        }
        match N::deserialize(d)? {
            N::Int(n) => Ok(NumberYaml(n)),
            N::Text(t) => parse_number(&t)
                .map(NumberYaml)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// `123` or `0x7b`.
pub fn parse_number(t: &str) -> Result<u64, String> {
    let t = t.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("{t:?} is not a number (decimal or 0x hex)"))
}

/// A device path the lab may put into device shell commands.
pub fn check_device_path(p: &str) -> Result<(), String> {
    let ok = p.starts_with('/')
        && !p.contains("//")
        && !p.split('/').any(|c| c == "..")
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a device path (absolute; A-Z a-z 0-9 / _ - . only, no `..`)"
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WiredYaml {
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    user: Option<String>,
    /// Private key path, or absent to use `agent: true` / the ssh config's IdentityFile.
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    agent: bool,
    #[serde(default)]
    known_hosts: Option<String>,
    #[serde(default)]
    known_hosts_policy: Option<HostKeyPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataYaml {
    /// `host:port` the sender connects to.
    connect: String,
    #[serde(default)]
    listen_port: Option<u16>,
    #[serde(default)]
    interface: Option<IfaceYaml>,
}

/// An interface name, checked while the YAML is read so the error carries
/// a line and column (those of the `data` block, as the YAML reader
/// reports them) and the path `devices.NAME.data`.
struct IfaceYaml(String);

impl<'de> Deserialize<'de> for IfaceYaml {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        check_interface(&s).map_err(|e| serde::de::Error::custom(format!("interface: {e}")))?;
        Ok(IfaceYaml(s))
    }
}

/// `reboot: {ssh: "reboot"}` or `reboot: {power: "usbrelay pinetab2=0 …"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RebootYaml {
    #[serde(default)]
    ssh: Option<String>,
    #[serde(default)]
    power: Option<String>,
}

/// A parse error with its place in the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {msg}")]
pub struct InventoryError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub msg: String,
}

pub struct Inventory {
    pub path: PathBuf,
    pub devices: BTreeMap<String, Device>,
}

/// Values found in `~/.ssh/config` for a host alias.
#[derive(Default, Debug, PartialEq)]
pub struct SshConfigHost {
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<String>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn expand_tilde(s: &str) -> PathBuf {
    match s.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None => PathBuf::from(s),
    }
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading inventory {}", path.display()))?;
        let ssh_config = std::fs::read_to_string(home().join(".ssh/config")).unwrap_or_default();
        Ok(Self::parse(
            &text,
            &path.display().to_string(),
            &ssh_config,
        )?)
    }

    /// Parses an inventory; `ssh_config` is the text of `~/.ssh/config`.
    pub fn parse(text: &str, file: &str, ssh_config: &str) -> Result<Inventory, InventoryError> {
        let f: FileV1 = serde_norway::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            // serde_norway appends " at line L column C"; keep the message itself.
            let msg = e.to_string();
            let msg = match msg.find(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            InventoryError {
                file: file.to_string(),
                line,
                column,
                msg,
            }
        })?;
        let mut devices = BTreeMap::new();
        for (name, d) in f.devices {
            let dev = to_device(&name, d, ssh_config).map_err(|msg| {
                // Point at the device's key in the file.
                let (line, column) = find_key(text, &name);
                InventoryError {
                    file: file.to_string(),
                    line,
                    column,
                    msg,
                }
            })?;
            devices.insert(name, dev);
        }
        Ok(Inventory {
            path: PathBuf::from(file),
            devices,
        })
    }

    pub fn device(&self, name: &str) -> Result<Device> {
        match self.devices.get(name) {
            Some(d) => Ok(d.clone()),
            None => {
                let known: Vec<&str> = self.devices.keys().map(String::as_str).collect();
                bail!(
                    "unknown device {name:?} in {}; known devices: {}",
                    self.path.display(),
                    if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            }
        }
    }
}

fn find_key(text: &str, key: &str) -> (usize, usize) {
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_start();
        if t.starts_with(&format!("{key}:")) {
            return (i + 1, l.len() - t.len() + 1);
        }
    }
    (0, 0)
}

/// A network interface name the lab may put into device shell commands:
/// what Linux accepts (`dev_valid_name`: 1 to 15 bytes, not `.`/`..`), narrowed
/// to letters, digits, `_`, `-` and `.` so it can never be shell syntax.
pub fn check_interface(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || !ok_chars {
        return Err(format!(
            "{name:?} is not an interface name (1-15 of A-Z a-z 0-9 _ - .)"
        ));
    }
    Ok(())
}

fn to_device(name: &str, d: DeviceYaml, ssh_config: &str) -> Result<Device, String> {
    let alias = lookup_ssh_config(ssh_config, &d.wired.host);
    let host = alias
        .hostname
        .clone()
        .unwrap_or_else(|| d.wired.host.clone());
    let known_hosts_host = if alias.hostname.is_some() {
        Some(d.wired.host.clone())
    } else {
        None
    };
    let auth = if d.wired.agent {
        if d.wired.key.is_some() {
            return Err(format!(
                "device {name}: wired: give either `key` or `agent: true`, not both"
            ));
        }
        Auth::Agent
    } else if let Some(k) = d.wired.key.as_deref().or(alias.identity_file.as_deref()) {
        Auth::Key(expand_tilde(k))
    } else {
        return Err(format!(
            "device {name}: wired: expected `key: PATH` or `agent: true` (no IdentityFile in ~/.ssh/config either)"
        ));
    };
    let (chost, cport) = d
        .data
        .connect
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_string(), p)))
        .ok_or_else(|| {
            format!(
                "device {name}: data.connect: expected HOST:PORT, got {:?}",
                d.data.connect
            )
        })?;
    let interface = d.data.interface.map_or_else(|| "wlan0".into(), |i| i.0);
    let fresh = d.fresh_uptime_max_s.unwrap_or(FRESH_UPTIME_MAX_S_DEFAULT);
    if fresh.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(format!(
            "device {name}: fresh_uptime_max_s must be > 0, got {fresh}"
        ));
    }
    Ok(Device {
        name: name.to_string(),
        wired: SshEndpoint {
            host,
            port: d.wired.port.or(alias.port).unwrap_or(22),
            user: d.wired.user.or(alias.user).unwrap_or_else(|| "root".into()),
            auth,
            known_hosts: expand_tilde(
                d.wired
                    .known_hosts
                    .as_deref()
                    .unwrap_or("~/.ssh/known_hosts"),
            ),
            known_hosts_host,
            host_key_policy: d.wired.known_hosts_policy.unwrap_or(HostKeyPolicy::Strict),
        },
        data: DataEndpoint {
            connect_host: chost,
            connect_port: cport,
            listen_port: d.data.listen_port.unwrap_or(cport),
            interface,
        },
        fresh_uptime_max_s: fresh,
        boot_timeout_s: d.boot_timeout_s.unwrap_or(BOOT_TIMEOUT_S_DEFAULT),
        boot: d.boot.map(|b| BootStorage {
            mount: b.mount.0,
            device: b.device.map(|p| p.0),
            env_path: b.env.0,
            env_offset: b.env_offset.0,
            env_size: b.env_size.0,
            env_redundant: b.env_redundant,
        }),
        reboot: match d.reboot.map(|r| (r.ssh, r.power)) {
            None | Some((None, None)) => Reboot::Ssh {
                command: "reboot".into(),
            },
            Some((Some(c), None)) => Reboot::Ssh { command: c },
            Some((None, Some(c))) => Reboot::Power { command: c },
            Some((Some(_), Some(_))) => {
                return Err(format!(
                    "device {name}: reboot: give either `ssh` or `power`, not both"
                ))
            }
        },
    })
}

/// OpenSSH's rule: for each keyword the first value found wins, scanning
/// `Host` blocks whose patterns match (`*` and `?` globs, `!` negation).
pub fn lookup_ssh_config(text: &str, alias: &str) -> SshConfigHost {
    let mut out = SshConfigHost::default();
    let mut active = true; // lines before any Host apply to all
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kw, val) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
            Some((k, v)) => (
                k.to_ascii_lowercase(),
                v.trim().trim_start_matches('=').trim(),
            ),
            None => continue,
        };
        if kw == "host" {
            let pats: Vec<&str> = val.split_whitespace().collect();
            let neg = pats
                .iter()
                .any(|p| p.strip_prefix('!').is_some_and(|p| glob(p, alias)));
            active = !neg && pats.iter().any(|p| !p.starts_with('!') && glob(p, alias));
            continue;
        }
        if kw == "match" {
            active = false;
            continue;
        }
        if !active {
            continue;
        }
        let val = val.trim_matches('"').to_string();
        match kw.as_str() {
            "hostname" if out.hostname.is_none() => out.hostname = Some(val.replace("%h", alias)),
            "port" if out.port.is_none() => out.port = val.parse().ok(),
            "user" if out.user.is_none() => out.user = Some(val),
            "identityfile" if out.identity_file.is_none() => out.identity_file = Some(val),
            _ => {}
        }
    }
    out
}

fn glob(p: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(p.as_bytes(), s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
devices:
  ohm:
    wired:
      host: ohm-wired.lan
      key: /home/lab/.ssh/id_ed25519
    data:
      connect: ohm.lan:5001
    fresh_uptime_max_s: 700
    reboot:
      power: usbrelay pinetab2=0
";

    #[test]
    fn parses_a_device_with_defaults() {
        let inv = Inventory::parse(GOOD, "inv.yaml", "").unwrap();
        let d = inv.device("ohm").unwrap();
        assert_eq!(d.wired.host, "ohm-wired.lan");
        assert_eq!(d.wired.port, 22);
        assert_eq!(d.wired.user, "root");
        assert_eq!(d.wired.host_key_policy, HostKeyPolicy::Strict);
        assert_eq!(d.data.connect_host, "ohm.lan");
        assert_eq!(d.data.listen_port, 5001);
        assert_eq!(d.data.interface, "wlan0");
        assert_eq!(d.fresh_uptime_max_s, 700.0);
        assert_eq!(d.boot_timeout_s, BOOT_TIMEOUT_S_DEFAULT);
        assert_eq!(
            d.reboot,
            Reboot::Power {
                command: "usbrelay pinetab2=0".into()
            }
        );
    }

    #[test]
    fn unknown_device_lists_the_known_ones() {
        let inv = Inventory::parse(GOOD, "inv.yaml", "").unwrap();
        let e = inv.device("ampere").unwrap_err().to_string();
        assert!(e.contains("unknown device \"ampere\""), "{e}");
        assert!(e.contains("known devices: ohm"), "{e}");
    }

    #[test]
    fn bad_yaml_names_file_line_and_column() {
        let bad = GOOD.replace(
            "      connect: ohm.lan:5001",
            "      connect: ohm.lan:5001\n      speed: fast",
        );
        let e = Inventory::parse(&bad, "lab/inventory.yaml", "")
            .err()
            .unwrap();
        assert_eq!((e.line, e.column), (8, 7), "{e}");
        let s = e.to_string();
        assert!(s.starts_with("lab/inventory.yaml:8:7: "), "{s}");
        assert!(s.contains("unknown field `speed`"), "{s}");
        assert!(s.contains("expected one of"), "{s}");

        let bad = GOOD.replace("fresh_uptime_max_s: 700", "fresh_uptime_max_s: soon");
        let e = Inventory::parse(&bad, "inv.yaml", "").err().unwrap();
        assert_eq!(e.line, 8, "{e}");
        assert!(e.msg.contains("invalid type"), "{e}");
    }

    #[test]
    fn bad_connect_points_at_the_device() {
        let bad = GOOD.replace("ohm.lan:5001", "ohm.lan");
        let e = Inventory::parse(&bad, "inv.yaml", "").err().unwrap();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.msg.contains("expected HOST:PORT"), "{e}");
    }

    #[test]
    fn a_data_interface_that_is_shell_syntax_is_refused() {
        // It goes into device shell commands (the ramp's counters): an
        // inventory value must never run as a command on the device.
        let bad = GOOD.replace(
            "      connect: ohm.lan:5001\n",
            "      connect: ohm.lan:5001\n      interface: 'wlan0; reboot'\n",
        );
        assert_ne!(bad, GOOD, "the fixture has the field to replace");
        let e = Inventory::parse(&bad, "inv.yaml", "").err().unwrap();
        assert!(e.msg.contains("devices.ohm.data: interface"), "{e}");
        assert!(e.msg.contains("not an interface name"), "{e}");
        // Where the YAML reader reports it: the `data` block of `ohm`.
        assert_eq!((e.line, e.column), (7, 7), "{e}");
        for ok in ["wlan0", "enx00e04c680001", "br-lan", "wl.1"] {
            assert_eq!(check_interface(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "wlan0$(id)",
            "a b",
            "sixteen-chars-xx",
            "eth0/x",
        ] {
            assert!(check_interface(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_config_aliases_fill_in_the_endpoint() {
        let cfg = "\
Host *.lan !ohm-serial.lan
    User lab
Host ohm
    HostName ohm-wired.lan
    Port 2222
    IdentityFile ~/.ssh/pinetab
Host *
    User nobody
";
        let yaml =
            "devices:\n  ohm:\n    wired: {host: ohm}\n    data: {connect: 'ohm.lan:5001'}\n";
        let d = Inventory::parse(yaml, "i.yaml", cfg)
            .unwrap()
            .device("ohm")
            .unwrap();
        assert_eq!(d.wired.host, "ohm-wired.lan");
        assert_eq!(d.wired.port, 2222);
        assert_eq!(d.wired.user, "nobody");
        assert_eq!(d.wired.auth, Auth::Key(home().join(".ssh/pinetab")));
        assert_eq!(d.wired.known_hosts_host.as_deref(), Some("ohm"));
        assert_eq!(lookup_ssh_config(cfg, "x.lan").user.as_deref(), Some("lab"));
        assert_eq!(
            lookup_ssh_config(cfg, "ohm-serial.lan").user.as_deref(),
            Some("nobody")
        );
    }
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn the_example_inventory_parses() {
        let text = include_str!("../../inventory.example.yaml");
        let inv = super::Inventory::parse(text, "lab/inventory.example.yaml", "").unwrap();
        let d = inv.device("ohm").unwrap();
        assert_eq!(d.wired.host, "ohm-wired.lan");
        assert_eq!(d.data.connect_host, "ohm.lan");
        assert_eq!(
            d.reboot,
            super::Reboot::Ssh {
                command: "reboot".into()
            }
        );
        let b = d.boot.as_ref().expect("the example PineTab2 is flashable");
        assert_eq!(
            (b.mount.as_str(), b.env_path.as_str(), b.env_size),
            ("/boot", "/boot/uboot.env", 0x40000)
        );
    }

    #[test]
    fn a_boot_path_that_is_shell_syntax_is_refused_with_its_place() {
        let text = "devices:\n  t:\n    wired: {host: t.lan, key: /k}\n    data: {connect: t.lan:5001}\n    boot:\n      mount: /boot\n      env: '/boot/x; reboot'\n      env_offset: 0\n      env_size: 0x40000\n";
        let e = super::Inventory::parse(text, "inv.yaml", "")
            .err()
            .expect("refused");
        let e = e.to_string();
        assert!(e.starts_with("inv.yaml:"), "{e}");
        assert!(e.contains("not a device path"), "{e}");
        let text = text
            .replace("'/boot/x; reboot'", "/boot/uboot.env")
            .replace("0x40000", "lots");
        let e = super::Inventory::parse(&text, "inv.yaml", "")
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("not a number"), "{e}");
    }
}
