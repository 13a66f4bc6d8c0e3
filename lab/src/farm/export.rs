//! Between an inventory device and a labgrid place.
//!
//! A place besser can run on has two `NetworkService` resources, the wired
//! link (`NetworkService`, labgrid's default name) and the data link
//! (`data`), and tags for what labgrid has no resource for: `board`,
//! `besser_iface` (the data interface on the device) and `besser_listen`
//! (the port its listener binds), and `besser_reboot=power` where labgrid
//! should power-cycle it (a power resource on the place). Keys,
//! known_hosts, the reboot method and
//! the A/B storage stay local: from the inventory entry of the same name if
//! there is one, else defaults (the ssh-agent, `~/.ssh/known_hosts`, strict).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};

use super::client::{PlaceInfo, PlaceResources};
use crate::device::inventory::{
    Auth, DataEndpoint, Device, HostKeyPolicy, Reboot, SshEndpoint, BOOT_TIMEOUT_S_DEFAULT,
    FRESH_UPTIME_MAX_S_DEFAULT,
};

/// The data link's resource name.
pub const DATA_SERVICE: &str = "data";
pub const TAG_IFACE: &str = "besser_iface";
pub const TAG_LISTEN: &str = "besser_listen";
/// `ssh` (default: the device reboots itself) or `power` (labgrid
/// power-cycles the place; it needs a power resource).
pub const TAG_REBOOT: &str = "besser_reboot";

/// The device a place stands for. `local`: the inventory entry of the same
/// name (its keys, reboot and boot storage are kept; the endpoints come
/// from the place, which is the truth in a farm).
pub fn device_from_place(
    place: &PlaceInfo,
    resources: &PlaceResources,
    local: Option<Device>,
    power_cycle: &str,
) -> Result<Device> {
    let services = &resources.services[..];
    let find = |n: &str| services.iter().find(|s| s.name == n);
    let Some(wired) = find("NetworkService") else {
        bail!(
            "place {}: no `NetworkService` resource (the wired link) among {:?}",
            place.name,
            services.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    };
    let Some(data) = find(DATA_SERVICE) else {
        bail!(
            "place {}: no NetworkService named `{DATA_SERVICE}` (the data link); `lab farm export` writes one",
            place.name
        );
    };
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    let mut d = local.unwrap_or_else(|| Device {
        name: place.name.clone(),
        wired: SshEndpoint {
            host: String::new(),
            port: 22,
            user: String::new(),
            auth: Auth::Agent,
            known_hosts: home.join(".ssh/known_hosts"),
            known_hosts_host: None,
            host_key_policy: HostKeyPolicy::Strict,
        },
        data: DataEndpoint {
            connect_host: String::new(),
            connect_port: 0,
            listen_port: 0,
            interface: "wlan0".into(),
        },
        fresh_uptime_max_s: FRESH_UPTIME_MAX_S_DEFAULT,
        boot_timeout_s: BOOT_TIMEOUT_S_DEFAULT,
        reboot: Reboot::Ssh {
            command: "reboot".into(),
        },
        boot: None,
    });
    d.name = place.name.clone();
    d.wired.host = wired.address.clone();
    d.wired.port = wired.port;
    d.wired.user = wired.username.clone();
    d.data.connect_host = data.address.clone();
    d.data.connect_port = data.port;
    if d.data.listen_port == 0 {
        d.data.listen_port = data.port;
    }
    if let Some(i) = place.tags.get(TAG_IFACE) {
        if i.is_empty()
            || !i
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            bail!(
                "place {}: tag {TAG_IFACE}={i:?} is not an interface name",
                place.name
            );
        }
        d.data.interface = i.clone();
    }
    match place.tags.get(TAG_REBOOT).map(String::as_str) {
        None | Some("ssh") => {}
        Some("power") if resources.has_power() => {
            d.reboot = Reboot::Power {
                command: power_cycle.to_string(),
            }
        }
        Some("power") => bail!(
            "place {}: {TAG_REBOOT}=power, but it has no power resource (classes: {})",
            place.name,
            resources.classes.join(", ")
        ),
        Some(other) => bail!(
            "place {}: {TAG_REBOOT}={other:?} (expected ssh or power)",
            place.name
        ),
    }
    if let Some(p) = place.tags.get(TAG_LISTEN) {
        d.data.listen_port = p.parse().map_err(|_| {
            anyhow::anyhow!("place {}: tag {TAG_LISTEN}={p:?} is not a port", place.name)
        })?;
    }
    Ok(d)
}

/// The tags a place for `dev` gets.
pub fn place_tags(dev: &Device, board: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("board".to_string(), board.to_string()),
        (TAG_IFACE.to_string(), dev.data.interface.clone()),
        (TAG_LISTEN.to_string(), dev.data.listen_port.to_string()),
    ])
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// A labgrid exporter configuration for an inventory device (its group is
/// the device's name), with the one-time place set-up as comments. labgrid
/// reads the file as a Jinja2 template whose line statements start with
/// `#`: comments here are `##` (its line-comment prefix), never `#`.
pub fn exporter_yaml(dev: &Device, board: &str) -> String {
    let tags: Vec<String> = place_tags(dev, board)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let n = &dev.name;
    let mut s = format!(
        "## labgrid exporter configuration for the besser inventory device `{n}`
## (`cargo xtask lab farm export --device {n}`). On the bench host next to it:
##   labgrid-exporter -c COORDINATOR:20408 {n}-exporter.yaml
## Once, from any host, the place besser reserves (`--place {n}`):
##   labgrid-client -p {n} create
##   labgrid-client -p {n} add-match '*/{n}/*'
##   labgrid-client -p {n} set-tags {}
{n}:
  NetworkService:            ## the wired link: control and telemetry (SSH)
    address: {}
    port: {}
    username: {}
  {DATA_SERVICE}:                      ## the link under test: where the sender connects
    cls: NetworkService
    address: {}
    port: {}
    username: {}
",
        tags.join(" "),
        yaml_str(&dev.wired.host),
        dev.wired.port,
        yaml_str(&dev.wired.user),
        yaml_str(&dev.data.connect_host),
        dev.data.connect_port,
        yaml_str(&dev.wired.user),
    );
    if let Reboot::Power { command } = &dev.reboot {
        s.push_str(&format!(
            "## Power: the inventory power-cycles with `{command}`; in labgrid that is an\n\
             ## ExternalPowerDriver (cmd_cycle) or a PDUDaemonPort resource here.\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::client::Service;

    fn res(services: Vec<Service>, extra: &[&str]) -> PlaceResources {
        let mut classes: Vec<String> = services
            .iter()
            .map(|_| "NetworkService".to_string())
            .collect();
        classes.extend(extra.iter().map(|s| s.to_string()));
        PlaceResources { services, classes }
    }

    fn svc(name: &str, address: &str, port: u16) -> Service {
        Service {
            name: name.into(),
            address: address.into(),
            port,
            username: "root".into(),
        }
    }

    fn place(tags: &[(&str, &str)]) -> PlaceInfo {
        PlaceInfo {
            name: "ohm".into(),
            tags: tags
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..PlaceInfo::default()
        }
    }

    #[test]
    fn a_place_becomes_a_device_with_its_links_and_tags() {
        let d = device_from_place(
            &place(&[(TAG_IFACE, "wlan1"), (TAG_LISTEN, "5002")]),
            &res(
                vec![
                    svc("NetworkService", "ohm-wired.lan", 22),
                    svc("data", "ohm.lan", 6001),
                ],
                &[],
            ),
            None,
            "unused",
        )
        .unwrap();
        assert_eq!(d.wired.host, "ohm-wired.lan");
        assert_eq!(d.data.connect_host, "ohm.lan");
        assert_eq!(d.data.connect_port, 6001);
        assert_eq!(d.data.listen_port, 5002);
        assert_eq!(d.data.interface, "wlan1");
        assert_eq!(d.wired.auth, Auth::Agent);
    }

    #[test]
    fn a_place_without_a_data_link_or_with_a_bad_tag_is_refused() {
        let e = device_from_place(
            &place(&[]),
            &res(vec![svc("NetworkService", "h", 22)], &[]),
            None,
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("named `data`"), "{e}");
        let e = device_from_place(
            &place(&[(TAG_IFACE, "wlan0;reboot")]),
            &res(
                vec![svc("NetworkService", "h", 22), svc("data", "h", 1)],
                &[],
            ),
            None,
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not an interface name"), "{e}");
        let links = || vec![svc("NetworkService", "h", 22), svc("data", "h", 1)];
        let e = device_from_place(
            &place(&[(TAG_REBOOT, "power")]),
            &res(links(), &[]),
            None,
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("no power resource"), "{e}");
    }

    #[test]
    fn a_place_with_a_power_port_is_power_cycled_through_labgrid_when_tagged() {
        let links = || vec![svc("NetworkService", "h", 22), svc("data", "h", 1)];
        let cmd = "LG_HOSTNAME='h' labgrid-client -x 'c:1' -p 'ohm' power cycle";
        let d = device_from_place(
            &place(&[(TAG_REBOOT, "power")]),
            &res(links(), &["PDUDaemonPort"]),
            None,
            cmd,
        )
        .unwrap();
        assert_eq!(
            d.reboot,
            Reboot::Power {
                command: cmd.into()
            }
        );
        let d =
            device_from_place(&place(&[]), &res(links(), &["PDUDaemonPort"]), None, cmd).unwrap();
        assert_eq!(
            d.reboot,
            Reboot::Ssh {
                command: "reboot".into()
            },
            "ssh unless the place says power"
        );
    }

    #[test]
    fn an_exported_device_reads_back_as_the_same_links() {
        let d = device_from_place(
            &place(&[]),
            &res(
                vec![
                    svc("NetworkService", "ohm-wired.lan", 2222),
                    svc("data", "ohm.lan", 5001),
                ],
                &[],
            ),
            None,
            "unused",
        )
        .unwrap();
        let y = exporter_yaml(&d, "pinetab2");
        let v: serde_json::Value = serde_norway::from_str(&y).unwrap();
        assert_eq!(v["ohm"]["NetworkService"]["address"], "ohm-wired.lan");
        assert_eq!(v["ohm"]["NetworkService"]["port"], 2222);
        assert_eq!(v["ohm"]["data"]["cls"], "NetworkService");
        assert_eq!(v["ohm"]["data"]["port"], 5001);
        assert!(y.contains("set-tags besser_iface=wlan0 besser_listen=5001 board=pinetab2"));
    }
}
