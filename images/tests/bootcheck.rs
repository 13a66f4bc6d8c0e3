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
        },
        sha256: Default::default(),
        build: BuildInfo {
            finished_utc: "x".into(),
            build_time_s: 0.0,
            kind: "cold".into(),
        },
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
