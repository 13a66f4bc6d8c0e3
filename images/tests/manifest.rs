//! The manifest's JSON form is the contract with the lab (CONTRACTS.md).

use besser_image::manifest::*;

fn sample() -> Manifest {
    Manifest {
        schema: SCHEMA_VERSION,
        board: "qemu-x86_64".into(),
        flavour: "prove-locking".into(),
        arch: "x86_64".into(),
        kernel_release: "6.12.117-besser-prove-locking".into(),
        kernel_version: "6.12.117".into(),
        source: Source {
            tarball: "/usr/src/linux-source-6.12.tar.xz".into(),
            sha256: "0".repeat(64),
        },
        patches: vec![PatchEntry {
            name: "0001-rust-bindings.patch".into(),
            subject: "rust: bindings".into(),
            sha256: "1".repeat(64),
        }],
        fragments: vec![FragmentEntry {
            path: "common.config".into(),
            sha256: "2".repeat(64),
        }],
        config_sha256: "3".repeat(64),
        toolchain: [("rustc".to_string(), "rustc 1.95.0".to_string())].into(),
        tree_key: "4".repeat(64),
        build_key: "5".repeat(64),
        artifacts: Artifacts {
            kernel: "bzImage".into(),
            initramfs: "initramfs.cpio.gz".into(),
            config: "config".into(),
            modules: "modules".into(),
            dtbs: vec![],
            build_log: "build.log".into(),
            boot_script: None,
            boot_env: None,
        },
        sha256: [("bzImage".to_string(), "6".repeat(64))].into(),
        build: BuildInfo {
            finished_utc: "2026-11-22T04:00:00Z".into(),
            build_time_s: 300.5,
            kind: "cold".into(),
        },
        driver: None,
        assembly: String::new(),
    }
}

#[test]
fn manifest_json_shape() {
    insta::assert_snapshot!(sample().to_json());
}

#[test]
fn manifest_round_trips_and_verifies_files() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("bzImage"), b"kernel").unwrap();
    std::fs::create_dir_all(d.path().join("modules/lib")).unwrap();
    std::fs::write(d.path().join("modules/lib/a.ko"), b"mod").unwrap();
    let mut m = sample();
    m.sha256 = hash_tree(d.path(), &[MANIFEST_FILE]).unwrap();
    assert_eq!(
        m.sha256.keys().collect::<Vec<_>>(),
        ["bzImage", "modules/lib/a.ko"]
    );
    std::fs::write(d.path().join(MANIFEST_FILE), m.to_json()).unwrap();
    let back = Manifest::load(d.path()).unwrap();
    assert_eq!(back, m);
    assert!(back.verify(d.path()).is_empty());
    std::fs::write(d.path().join("bzImage"), b"tampered").unwrap();
    assert_eq!(back.verify(d.path()), ["bzImage"]);
}

#[test]
fn a_broken_manifest_says_which_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(MANIFEST_FILE), "{\"board\": 1}").unwrap();
    let e = Manifest::load(d.path()).unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}: not a besser image manifest",
            d.path().join(MANIFEST_FILE).display()
        )),
        "{e}"
    );
}
