//! The boot test's verdicts over fixtures from a real boot (see tests/data/boot/README.md).

use std::path::Path;

use besser_image::bootcheck::{evaluate, Check, Observed};
use besser_image::manifest::*;

fn data(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/boot")
            .join(name),
    )
    .unwrap()
}

fn manifest(flavour: &str, release: &str) -> Manifest {
    Manifest {
        schema: SCHEMA_VERSION,
        board: "qemu-x86_64".into(),
        flavour: flavour.into(),
        arch: "x86_64".into(),
        kernel_release: release.into(),
        kernel_version: "6.12.117".into(),
        source: Source {
            tarball: "t".into(),
            sha256: "0".into(),
        },
        patches: vec![],
        fragments: vec![],
        config_sha256: "0".into(),
        toolchain: Default::default(),
        tree_key: "0".into(),
        build_key: "0".into(),
        artifacts: Artifacts {
            kernel: "bzImage".into(),
            initramfs: "initramfs.cpio".into(),
            config: "config".into(),
            modules: "modules".into(),
            dtbs: vec![],
            build_log: "build.log".into(),
            boot_script: None,
            boot_env: None,
        },
        sha256: Default::default(),
        build: BuildInfo {
            finished_utc: "x".into(),
            build_time_s: 0.0,
            kind: "cold".into(),
        },
        driver: None,
        assembly: String::new(),
    }
}

fn release_observed() -> Observed {
    Observed {
        uname_r: "6.12.117-besser\n".into(),
        proc_config: data("release-config-excerpt.txt"),
        proc_lockdep: false,
        lockdep_stats: String::new(),
        dmesg: data("release-dmesg.txt"),
        modules: data("release-proc-modules.txt"),
        ..Observed::default()
    }
}

fn render(checks: &[Check]) -> String {
    checks
        .iter()
        .map(|c| {
            format!(
                "{} {}: {}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            )
        })
        .collect()
}

#[test]
fn a_good_release_boot_passes_every_check() {
    let checks = evaluate(
        &manifest("release", "6.12.117-besser"),
        &data("release-config-excerpt.txt"),
        &release_observed(),
    );
    assert!(checks.iter().all(|c| c.ok), "{}", render(&checks));
    insta::assert_snapshot!(render(&checks));
}

#[test]
fn a_wrong_kernel_or_config_fails_with_details() {
    let mut o = release_observed();
    o.uname_r = "6.1.0-28-amd64\n".into();
    o.proc_config = o
        .proc_config
        .replace("CONFIG_RUST=y", "# CONFIG_RUST is not set")
        .replace(
            "CONFIG_LOCALVERSION=\"-besser\"",
            "CONFIG_LOCALVERSION=\"\"",
        );
    o.modules = String::new();
    let checks = evaluate(
        &manifest("release", "6.12.117-besser"),
        &data("release-config-excerpt.txt"),
        &o,
    );
    insta::assert_snapshot!(render(&checks));
}

#[test]
fn prove_locking_needs_live_lockdep_and_no_splat() {
    let mut o = release_observed();
    o.uname_r = "6.12.117-besser-prove-locking".into();
    o.proc_lockdep = true;
    o.lockdep_stats = " lock-classes:  1210 [max: 8192]\n debug_locks:  1\n".into();
    o.dmesg.push_str(&data("lockdep-splat.txt"));
    let m = manifest("prove-locking", "6.12.117-besser-prove-locking");
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    insta::assert_snapshot!(render(&checks));
    // lockdep switched off (debug_locks 0) is a failure of its own.
    o.lockdep_stats = " debug_locks:  0\n".into();
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert!(
        !checks
            .iter()
            .find(|c| c.name == "lockdep is active")
            .unwrap()
            .ok
    );
}

fn with_driver() -> (Manifest, Observed) {
    let mut m = manifest("release", "6.12.117-besser");
    m.driver = Some(DriverModule {
        module: "modules/lib/modules/6.12.117-besser/extra/bes2600.ko".into(),
        srcversion: "ABCA431F69A2193DF6F46F4".into(),
        sha256: "0".into(),
        sources_sha256: "0".into(),
        sdio_sim: Some("modules/lib/modules/6.12.117-besser/extra/besser_sdio_sim.ko".into()),
    });
    let mut o = release_observed();
    // Lines as a besser qemu-x86_64 image printed them (2026-12-01).
    o.dmesg.push_str(
        "[    9.185902] mmc0: new SDIO card at address 0001\n\
         [   14.299388] bes2600: probing be57:2002\n\
         [   14.309103] bes2600: firmware loaded (98304 bytes at 0x20000000, 15124 DPD bytes)\n\
         [   14.309993] bes2600: firmware up, 30 input buffers\n",
    );
    o.sdio_ids = "0xbe57 0x2002\n".into();
    o.sdio_modalias = "sdio:c00vBE57d2002\n".into();
    // What `iw` and the chip model's debugfs file printed on that boot.
    o.scan_2ghz =
        "BSS 02:be:57:00:00:01(on wlan1)\n\tfreq: 2437\n\tsignal: -60.00 dBm\n\tSSID: besser\n"
            .into();
    o.chip_before = "boots 1\nrequests 3\nscan_requests 1\nscan_rejects 0\n".into();
    o.chip_after_5ghz_multi = "boots 1\nrequests 3\nscan_requests 1\nscan_rejects 0\n".into();
    o.chip_after_5ghz_single = "boots 1\nrequests 4\nscan_requests 2\nscan_rejects 0\n".into();
    o.dmesg
        .push_str("[   13.250270] bes2600: scan: Ghz5 leg refused (NotSupported)\n");
    o.scan_withheld = "rc=1\n\tSSID: besser\nscan_requests 5\nscan_completes_dropped 1\n".into();
    o.link_open = "Connected to 02:be:57:00:00:01 (on wlan1)\n\tSSID: besser\n".into();
    o.link_wep = o.link_open.clone();
    o.chip_after_wep =
        "scan_requests 4\nkeys_by_type [1, 0, 0, 0, 0, 0, 0, 0]\nap_associated true\n\
         edca_requests 8\nedca_cwmin 15 15 15 15\nedca_cwmax 1023 1023 1023 1023\nedca_aifs 2 2 2 2\n"
            .into();
    o.tx_flood = "tx_frames 40\nResult: OK: 2154321(c2101223+d53098) usec, 20000 (600byte,0frags)\ntx_frames 20040\n".into();
    o.chip_after_ps_on = "pm_requests 1\npm_refused 0\nlast_pm_mode 1\n".into();
    o.chip_after_ps_off = "pm_requests 2\npm_refused 0\nlast_pm_mode 0\n".into();
    o.chip_after_ps_refused = "pm_requests 3\npm_refused 1\nlast_pm_mode 0\n".into();
    o.driver_srcversion = "ABCA431F69A2193DF6F46F4\n".into();
    o.dmesg_after_rmmod = format!(
        "{}[   20.1] bes2600: set_pm refused (status 1): power save latched off\n\
         [   21.2] bes2600: set_pm (ps false): suppressed, the firmware refused power save\n\
         [   14.1] bes2600: scan: timeout waiting for the Ghz2 leg's scan complete\n\
         [   23.852833] bes2600: removed (tx queue stops 31, wakes 31)\n[   23.866479] mmc0: card 0001 removed\n",
        o.dmesg
    );
    (m, o)
}

fn failed(checks: &[Check]) -> Vec<&'static str> {
    checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
}

#[test]
fn the_driver_checks_pass_on_what_a_good_boot_printed() {
    let (m, o) = with_driver();
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(failed(&checks), Vec::<&str>::new(), "{}", render(&checks));
    for name in [
        "the MMC core enumerates the SDIO card",
        "the card is a BES2600 (vendor 0xbe57, device 0x2002)",
        "bes2600.ko binds and its firmware starts",
        "the running bes2600 is the manifest's (srcversion)",
        "rmmod bes2600 and the simulated host: clean",
        "iw scan lists the simulated AP on 2.4 GHz",
        "a multi-channel 5 GHz scan is refused before the chip (no firmware reject)",
        "a single-channel 5 GHz scan reaches the chip and passes",
        "associates with the open network (iw connect)",
        "a static WEP key reaches the chip as WSM type 0 (WEP default), no TKIP type",
        "iw power_save on/off reaches the chip as WSM PS / active (set_pm)",
        "a refused set_pm latches power save off (the core's PM policy)",
        "a scan whose completion never comes is ended by the watchdog (delayed work), the next scan works",
        "a TX flood (pktgen) fills bes2600's queues: mac80211's queue stopped, woken again, frames reach the chip",
    ] {
        assert!(checks.iter().any(|c| c.name == name), "{name} not checked");
    }
}

#[test]
fn the_driver_checks_name_what_is_missing() {
    let (m, mut o) = with_driver();
    o.dmesg = o.dmesg.replace("firmware up", "firmware download failed");
    o.sdio_ids = "0x02d0 0x4329\n".into();
    o.sdio_modalias = "sdio:c00v02D0d4329\n".into();
    o.driver_srcversion = "0000\n".into();
    o.dmesg_after_rmmod.push_str("[   24.0] WARNING: CPU: 0 PID: 1 at drivers/mmc/core/sdio_irq.c:300 sdio_release_irq+0x1/0x2\n");
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec![
            "the card is a BES2600 (vendor 0xbe57, device 0x2002)",
            "the card's modalias matches bes2600's module alias (autoload)",
            "bes2600.ko binds and its firmware starts",
            "the running bes2600 is the manifest's (srcversion)",
            "rmmod bes2600 and the simulated host: clean",
        ]
    );
}

#[test]
fn a_5ghz_scan_the_firmware_rejects_fails_the_guard_check() {
    let (m, mut o) = with_driver();
    // Without the guard the multi-channel leg reaches the chip, which rejects it.
    o.chip_after_5ghz_multi = "scan_requests 2\nscan_rejects 1\n".into();
    o.chip_after_5ghz_single = "scan_requests 3\nscan_rejects 1\n".into();
    o.scan_2ghz = "command failed: Invalid argument (-22)\n".into();
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec![
            "iw scan lists the simulated AP on 2.4 GHz",
            "a multi-channel 5 GHz scan is refused before the chip (no firmware reject)",
        ]
    );
}

#[test]
fn a_key_with_the_wrong_type_fails_the_key_check() {
    let (m, mut o) = with_driver();
    // A TKIP-typed key (the pre-finding bug) and no association.
    o.chip_after_wep = "keys_by_type [0, 0, 0, 1, 0, 0, 0, 0]\n".into();
    o.link_open = "Not connected.\n".into();
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec![
            "associates with the open network (iw connect)",
            "a static WEP key reaches the chip as WSM type 0 (WEP default), no TKIP type",
            "mac80211's EDCA parameters reach the chip (conf_tx)",
        ]
    );
}

/// EDCA values in the wrong queue order or layout read as nonsense windows.
#[test]
fn edca_parameters_in_the_wrong_layout_fail_the_conf_tx_check() {
    let (m, mut o) = with_driver();
    o.chip_after_wep = o
        .chip_after_wep
        .replace("edca_cwmin 15 15 15 15", "edca_cwmin 15 0 1023 15");
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec!["mac80211's EDCA parameters reach the chip (conf_tx)"]
    );
    let (_, mut o) = with_driver();
    o.chip_after_wep = o
        .chip_after_wep
        .replace("edca_requests 8", "edca_requests 0");
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec!["mac80211's EDCA parameters reach the chip (conf_tx)"]
    );
}

/// Power save that never reaches the chip, or a latch that does not hold.
#[test]
fn power_save_that_misses_the_chip_or_a_latch_that_leaks_fails() {
    let (m, mut o) = with_driver();
    // No SUPPORTS_PS: `iw set power_save` changes nothing on the chip.
    o.chip_after_ps_on = "pm_requests 0\npm_refused 0\nlast_pm_mode 0\n".into();
    o.chip_after_ps_off = o.chip_after_ps_on.clone();
    o.chip_after_ps_refused = o.chip_after_ps_on.clone();
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec![
            "iw power_save on/off reaches the chip as WSM PS / active (set_pm)",
            "a refused set_pm latches power save off (the core's PM policy)",
        ]
    );
    // Fast PS where mac80211 asked for plain PS.
    let (_, mut o) = with_driver();
    o.chip_after_ps_on = o
        .chip_after_ps_on
        .replace("last_pm_mode 1", "last_pm_mode 129");
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec!["iw power_save on/off reaches the chip as WSM PS / active (set_pm)"]
    );
    // No latch: every request after the refusal still goes to the chip.
    let (_, mut o) = with_driver();
    o.chip_after_ps_refused = "pm_requests 5\npm_refused 3\nlast_pm_mode 0\n".into();
    o.dmesg_after_rmmod = o.dmesg_after_rmmod.replace("suppressed", "sent");
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec!["a refused set_pm latches power save off (the core's PM policy)"]
    );
}

/// No watchdog: the scan hangs until `timeout` kills `iw`, and mac80211
/// refuses the next one.
#[test]
fn a_scan_left_hanging_fails_the_watchdog_check() {
    let (m, mut o) = with_driver();
    o.scan_withheld =
        "rc=124\ncommand failed: Device or resource busy (-16)\nscan_completes_dropped 1\n".into();
    o.dmesg_after_rmmod = o
        .dmesg_after_rmmod
        .replace("scan: timeout waiting for", "scan:");
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(
        failed(&checks),
        vec!["a scan whose completion never comes is ended by the watchdog (delayed work), the next scan works"]
    );
}

/// A queue stopped and never woken is a wedged link; a flood that never
/// filled the queue proves nothing.
#[test]
fn a_queue_left_stopped_or_never_stopped_fails_the_flood_check() {
    const NAME: &str = "a TX flood (pktgen) fills bes2600's queues: mac80211's queue stopped, woken again, frames reach the chip";
    for (stops, wakes) in [(31, 30), (0, 0)] {
        let (m, mut o) = with_driver();
        o.dmesg_after_rmmod = o.dmesg_after_rmmod.replace(
            "stops 31, wakes 31",
            &format!("stops {stops}, wakes {wakes}"),
        );
        let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
        assert_eq!(failed(&checks), vec![NAME], "{stops}/{wakes}");
    }
    let (m, mut o) = with_driver();
    o.tx_flood = o.tx_flood.replace("tx_frames 20040", "tx_frames 41");
    let checks = evaluate(&m, &data("release-config-excerpt.txt"), &o);
    assert_eq!(failed(&checks), vec![NAME]);
}
