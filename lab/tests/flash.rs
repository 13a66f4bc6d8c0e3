//! `besser_lab::flash` against a model device: an A/B boot partition in
//! memory, a U-Boot environment image, and a bootloader that follows the
//! boot script's rule (written here again from `images/boot/besser-ab.cmd`,
//! not from the flash code), whose kernels either come up or panic. The
//! same cases on the virtual device's real U-Boot are the QEMU end-to-end
//! tests.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use besser_image::manifest::{self, Artifacts, BuildInfo, DriverModule, Manifest, Source};
use besser_lab::device::inventory::BootStorage;
use besser_lab::flash::device::{Back, Running, SlotDevice};
use besser_lab::flash::env::{Env, Layout};
use besser_lab::flash::plan::{self, DeviceState, Plan, PlanError};
use besser_lab::flash::run::{flash, FlashError};
use besser_lab::flash::slots::{AbState, Slot};

const ENV_SIZE: usize = 0x1000;

/// What a kernel image does when booted, by its bytes.
#[derive(Clone)]
struct Kernel {
    release: String,
    config_sha256: String,
    srcversion: String,
    comes_up: bool,
}

struct Model {
    files: BTreeMap<String, Vec<u8>>,
    env: Vec<u8>,
    kernels: BTreeMap<Vec<u8>, Kernel>,
    booted: Slot,
    boot_id: u32,
    capacity: u64,
    /// The session drops on this put (counting from 1): an interrupted copy.
    fail_on_put: Option<usize>,
    puts: usize,
    boots: Vec<Slot>,
    loaded_module: Option<Vec<u8>>,
}

fn slot_name(s: Slot) -> &'static str {
    s.name()
}

impl Model {
    fn used(&self) -> u64 {
        self.files.values().map(|v| v.len() as u64).sum()
    }

    fn var(&self, name: &str) -> Option<String> {
        Env::decode(&self.env, Layout::Single)
            .ok()?
            .get(name)
            .map(str::to_string)
    }

    /// The boot script's rule, one boot: the first slot of BOOT_ORDER with
    /// tries left loses one and boots; none left: both back to 3, reset.
    fn boot_once(&mut self) -> Option<Slot> {
        let mut env = Env::decode(&self.env, Layout::Single).expect("model env");
        let order = env.get("BOOT_ORDER").unwrap_or("A B").to_string();
        for w in order.split(' ') {
            let var = format!("BOOT_{w}_LEFT");
            let left: u32 = env.get(&var).unwrap_or("3").parse().unwrap();
            if left > 0 {
                env.set(&var, &(left - 1).to_string());
                self.env = env.encode(ENV_SIZE, Layout::Single, 0, 0).unwrap();
                return Some(if w == "A" { Slot::A } else { Slot::B });
            }
        }
        env.set("BOOT_A_LEFT", "3");
        env.set("BOOT_B_LEFT", "3");
        self.env = env.encode(ENV_SIZE, Layout::Single, 0, 0).unwrap();
        None
    }

    fn kernel_of(&self, s: Slot) -> Option<&Kernel> {
        self.kernels
            .get(self.files.get(&format!("{}/Image", slot_name(s)))?)
    }
}

impl SlotDevice for Model {
    fn state(&mut self) -> Result<DeviceState> {
        let ab = AbState::from_env(&self.read_env()?).map_err(|e| anyhow!("{e}"))?;
        let slot_bytes = [Slot::A, Slot::B].map(|s| {
            self.files
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{}/", slot_name(s))))
                .map(|(_, v)| v.len() as u64)
                .sum()
        });
        Ok(DeviceState {
            boot_id: self.boot_id.to_string(),
            kernel_release: self.kernel_of(self.booted).unwrap().release.clone(),
            booted: Some(self.booted),
            ab,
            free_bytes: self.capacity - self.used(),
            slot_bytes,
            booted_manifest_sha256: None,
        })
    }
    fn read_env(&mut self) -> Result<Env> {
        Ok(Env::decode(&self.env, Layout::Single)?)
    }
    fn write_env(&mut self, env: &Env) -> Result<()> {
        self.env = env.encode(ENV_SIZE, Layout::Single, 0, 0)?;
        Ok(())
    }
    fn start_staging(&mut self, slot: Slot, _dirs: &[String]) -> Result<()> {
        let p = format!(".besser-staging-{}/", slot_name(slot));
        self.files.retain(|k, _| !k.starts_with(&p));
        Ok(())
    }
    fn put(&mut self, slot: Slot, rel: &str, data: &mut dyn Read, _len: u64) -> Result<()> {
        self.puts += 1;
        let mut v = Vec::new();
        data.read_to_end(&mut v)?;
        if self.fail_on_put == Some(self.puts) {
            // Half the file arrived, then the session dropped.
            v.truncate(v.len() / 2);
            self.files
                .insert(format!(".besser-staging-{}/{rel}", slot_name(slot)), v);
            bail!("ssh: session dropped");
        }
        if self.used() + v.len() as u64 > self.capacity {
            bail!("No space left on device");
        }
        self.files
            .insert(format!(".besser-staging-{}/{rel}", slot_name(slot)), v);
        Ok(())
    }
    fn keep_bootargs(&mut self, from: Slot, slot: Slot) -> Result<()> {
        if let Some(b) = self
            .files
            .get(&format!("{}/bootargs.env", slot_name(from)))
            .cloned()
        {
            self.files.insert(
                format!(".besser-staging-{}/bootargs.env", slot_name(slot)),
                b,
            );
        }
        Ok(())
    }
    fn staged_sha256(&mut self, slot: Slot, rels: &[&str]) -> Result<Vec<Option<String>>> {
        Ok(rels
            .iter()
            .map(|r| {
                self.files
                    .get(&format!(".besser-staging-{}/{r}", slot_name(slot)))
                    .map(|v| besser_image::sha256_hex(v))
            })
            .collect())
    }
    fn commit(&mut self, slot: Slot) -> Result<()> {
        let (st, to) = (
            format!(".besser-staging-{}/", slot_name(slot)),
            format!("{}/", slot_name(slot)),
        );
        self.files.retain(|k, _| !k.starts_with(&to));
        let staged: Vec<(String, Vec<u8>)> = self
            .files
            .iter()
            .filter(|(k, _)| k.starts_with(&st))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in staged {
            self.files.remove(&k);
            self.files.insert(format!("{to}{}", &k[st.len()..]), v);
        }
        Ok(())
    }
    fn reboot(&mut self) -> Result<Back> {
        // A panicking kernel reboots (`panic=1`) into U-Boot again.
        for _ in 0..8 {
            let Some(s) = self.boot_once() else { continue };
            self.boots.push(s);
            if self.kernel_of(s).is_some_and(|k| k.comes_up) {
                self.booted = s;
                self.boot_id += 1;
                self.loaded_module = None;
                return Ok(Back::Yes);
            }
        }
        Ok(Back::No {
            last: "connection refused".into(),
        })
    }
    fn power_cycle(&mut self) -> Result<Option<Back>> {
        Ok(None)
    }
    fn running(&mut self) -> Result<Running> {
        let k = self.kernel_of(self.booted).unwrap().clone();
        Ok(Running {
            booted: Some(self.booted),
            kernel_release: k.release,
            config_sha256: Some(k.config_sha256),
            srcversion: Some(match &self.loaded_module {
                Some(m) => String::from_utf8_lossy(m).into_owned(),
                None => k.srcversion,
            }),
        })
    }
    fn install_module(
        &mut self,
        slot: Option<Slot>,
        rel: &str,
        _release: &str,
        data: &[u8],
        _sha: &str,
    ) -> Result<()> {
        if let Some(s) = slot {
            self.files
                .insert(format!("{}/{rel}", slot_name(s)), data.to_vec());
        }
        self.loaded_module = Some(data.to_vec());
        Ok(())
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("besser-flash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An image directory with a manifest that describes it; the module's
/// bytes are its srcversion, so the model can report what was loaded.
fn image_dir(root: &Path, name: &str, kernel: &[u8], release: &str) -> (PathBuf, Manifest) {
    let dir = root.join(name);
    let rel_mod = format!("modules/lib/modules/{release}/extra/bes2600.ko");
    let srcversion = format!("SRC-{name}");
    for (f, bytes) in [
        ("Image", kernel.to_vec()),
        ("initramfs.cpio", b"070701 initramfs".to_vec()),
        ("config", format!("CONFIG_{name}=y\n").into_bytes()),
        (rel_mod.as_str(), srcversion.clone().into_bytes()),
        (
            &format!("modules/lib/modules/{release}/modules.dep"),
            b"extra/bes2600.ko:\n".to_vec(),
        ),
    ] {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let m = Manifest {
        schema: manifest::SCHEMA_VERSION,
        board: "qemu-arm64".into(),
        flavour: "release".into(),
        arch: "aarch64".into(),
        kernel_release: release.into(),
        kernel_version: "6.12.117".into(),
        source: Source {
            tarball: "linux.tar.xz".into(),
            sha256: "0".repeat(64),
        },
        patches: vec![],
        fragments: vec![],
        config_sha256: besser_image::sha256_file(&dir.join("config")).unwrap(),
        toolchain: BTreeMap::new(),
        tree_key: "1".repeat(64),
        build_key: "2".repeat(64),
        artifacts: Artifacts {
            kernel: "Image".into(),
            initramfs: "initramfs.cpio".into(),
            config: "config".into(),
            modules: "modules".into(),
            dtbs: vec![],
            build_log: "config".into(),
            boot_script: None,
            boot_env: None,
        },
        sha256: manifest::hash_tree(&dir, &[manifest::MANIFEST_FILE]).unwrap(),
        build: BuildInfo {
            finished_utc: "2026-12-01T00:00:00Z".into(),
            build_time_s: 1.0,
            kind: "cold".into(),
        },
        driver: Some(DriverModule {
            module: rel_mod.clone(),
            srcversion,
            sha256: besser_image::sha256_file(&dir.join(&rel_mod)).unwrap(),
            sources_sha256: "3".repeat(64),
            sdio_sim: None,
        }),
        assembly: "test".into(),
    };
    std::fs::write(dir.join(manifest::MANIFEST_FILE), m.to_json()).unwrap();
    (dir, m)
}

fn kernel_for(m: &Manifest, comes_up: bool) -> Kernel {
    Kernel {
        release: m.kernel_release.clone(),
        config_sha256: m.config_sha256.clone(),
        srcversion: m.driver.as_ref().unwrap().srcversion.clone(),
        comes_up,
    }
}

fn boot() -> BootStorage {
    BootStorage {
        mount: "/boot".into(),
        device: Some("/dev/vda1".into()),
        env_path: "/dev/mtdblock0".into(),
        env_offset: 0x4000000,
        env_size: ENV_SIZE as u64,
        env_redundant: false,
    }
}

/// A device running slot A (image "old"), A good, B empty.
fn device(old: &Manifest, old_dir: &Path) -> Model {
    let mut env = Env::new();
    AbState::defaults().apply(&mut env);
    env.set("bootcmd", "run distro_bootcmd");
    let mut files = BTreeMap::new();
    for f in ["Image", "initramfs.cpio"] {
        files.insert(format!("A/{f}"), std::fs::read(old_dir.join(f)).unwrap());
    }
    files.insert(
        "A/bootargs.env".into(),
        b"besser_bootargs=console=ttyAMA0 panic=1\n".to_vec(),
    );
    let mut kernels = BTreeMap::new();
    kernels.insert(
        std::fs::read(old_dir.join("Image")).unwrap(),
        kernel_for(old, true),
    );
    Model {
        files,
        env: env.encode(ENV_SIZE, Layout::Single, 0, 0).unwrap(),
        kernels,
        booted: Slot::A,
        boot_id: 1,
        capacity: 1 << 20,
        fail_on_put: None,
        puts: 0,
        boots: vec![],
        loaded_module: None,
    }
}

fn slot_files(d: &Model, s: Slot) -> BTreeMap<String, Vec<u8>> {
    d.files
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{}/", s.name())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn plan_for(
    dev: &mut Model,
    dir: &Path,
    m: &Manifest,
    module_only: bool,
) -> Result<Plan, PlanError> {
    let st = dev.state().unwrap();
    plan::plan(dir, m, &boot(), &st, module_only)
}

#[test]
fn a_good_image_lands_in_the_other_slot_verified_and_marked_good() {
    let root = scratch("good");
    let (old_dir, old) = image_dir(&root, "old", b"kernel-old", "6.12.117-besser");
    let (new_dir, new) = image_dir(&root, "new", b"kernel-new", "6.12.117-besser");
    let mut dev = device(&old, &old_dir);
    dev.kernels
        .insert(b"kernel-new".to_vec(), kernel_for(&new, true));
    let a_before = slot_files(&dev, Slot::A);
    let p = plan_for(&mut dev, &new_dir, &new, false).unwrap();
    let text = p.to_string();
    assert!(text.contains("flash into slot B"), "{text}");
    assert!(text.contains("BOOT_ORDER=\"A B\" BOOT_A_LEFT=3 BOOT_B_LEFT=3 -> BOOT_ORDER=\"B A\" BOOT_A_LEFT=3 BOOT_B_LEFT=1"), "{text}");
    let r = flash(&mut dev, &p).unwrap();
    assert_eq!(r.slot, Some(Slot::B));
    assert_eq!(dev.booted, Slot::B);
    assert_eq!(dev.boots, [Slot::B]);
    assert_eq!(dev.var("BOOT_ORDER").as_deref(), Some("B A"));
    assert_eq!(dev.var("BOOT_B_LEFT").as_deref(), Some("3"));
    // Other variables survive; slot A is untouched; the running slot's
    // command line came along; no staging is left.
    assert_eq!(dev.var("bootcmd").as_deref(), Some("run distro_bootcmd"));
    assert_eq!(slot_files(&dev, Slot::A), a_before);
    assert_eq!(
        dev.files.get("B/bootargs.env"),
        dev.files.get("A/bootargs.env")
    );
    assert_eq!(dev.files["B/Image"], b"kernel-new");
    assert!(dev.files.keys().all(|k| !k.starts_with(".besser-staging")));
    assert_eq!(r.bytes_copied, p_bytes(&p));
    std::fs::remove_dir_all(&root).unwrap();
}

fn p_bytes(p: &Plan) -> u64 {
    match p {
        Plan::Slot { bytes, .. } => *bytes,
        Plan::Module { copy, .. } => copy.bytes,
    }
}

#[test]
fn a_kernel_that_panics_falls_back_by_itself_and_flash_says_so() {
    let root = scratch("panic");
    let (old_dir, old) = image_dir(&root, "old", b"kernel-old", "6.12.117-besser");
    let (new_dir, new) = image_dir(&root, "bad", b"kernel-panics", "6.12.117-besser");
    let mut dev = device(&old, &old_dir);
    dev.kernels
        .insert(b"kernel-panics".to_vec(), kernel_for(&new, false));
    let a_before = slot_files(&dev, Slot::A);
    let p = plan_for(&mut dev, &new_dir, &new, false).unwrap();
    let e = flash(&mut dev, &p).unwrap_err();
    let fe = e.downcast_ref::<FlashError>().expect("a FlashError");
    assert!(
        matches!(
            fe,
            FlashError::FellBack {
                target: Slot::B,
                running: Slot::A
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("back on slot A by itself"), "{e}");
    // B had its one try, then U-Boot took A without help.
    assert_eq!(dev.boots, [Slot::B, Slot::A]);
    assert_eq!(dev.booted, Slot::A);
    // Flash left A first and good, B without tries.
    assert_eq!(dev.var("BOOT_ORDER").as_deref(), Some("A B"));
    assert_eq!(dev.var("BOOT_A_LEFT").as_deref(), Some("3"));
    assert_eq!(dev.var("BOOT_B_LEFT").as_deref(), Some("0"));
    assert_eq!(slot_files(&dev, Slot::A), a_before);
    // The next reboot stays on A.
    dev.reboot().unwrap();
    assert_eq!(dev.booted, Slot::A);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_interrupted_copy_leaves_the_active_slot_and_the_variables_and_a_rerun_succeeds() {
    let root = scratch("interrupt");
    let (old_dir, old) = image_dir(&root, "old", b"kernel-old", "6.12.117-besser");
    let (new_dir, new) = image_dir(&root, "new", b"kernel-new-and-longer", "6.12.117-besser");
    let mut dev = device(&old, &old_dir);
    dev.kernels
        .insert(b"kernel-new-and-longer".to_vec(), kernel_for(&new, true));
    let a_before = slot_files(&dev, Slot::A);
    let env_before = dev.env.clone();
    dev.fail_on_put = Some(2);
    let p = plan_for(&mut dev, &new_dir, &new, false).unwrap();
    let e = flash(&mut dev, &p).unwrap_err();
    assert!(format!("{e:#}").contains("session dropped"), "{e:#}");
    assert_eq!(
        dev.env, env_before,
        "the boot variables must not change before the copy is verified"
    );
    assert_eq!(slot_files(&dev, Slot::A), a_before);
    assert!(
        slot_files(&dev, Slot::B).is_empty(),
        "nothing committed to B"
    );
    assert_eq!(dev.booted, Slot::A);
    assert!(dev.boots.is_empty(), "no reboot");
    // A rerun starts the staging afresh.
    dev.fail_on_put = None;
    let p = plan_for(&mut dev, &new_dir, &new, false).unwrap();
    flash(&mut dev, &p).unwrap();
    assert_eq!(dev.booted, Slot::B);
    assert_eq!(dev.files["B/Image"], b"kernel-new-and-longer");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_file_corrupted_on_the_way_is_caught_before_the_commit() {
    let root = scratch("corrupt");
    let (old_dir, old) = image_dir(&root, "old", b"kernel-old", "6.12.117-besser");
    let (new_dir, new) = image_dir(&root, "new", b"kernel-new", "6.12.117-besser");
    let mut dev = device(&old, &old_dir);
    let p = plan_for(&mut dev, &new_dir, &new, false).unwrap();
    // The file changes after the plan read the manifest.
    std::fs::write(new_dir.join("Image"), b"kernel-NEW").unwrap();
    let env_before = dev.env.clone();
    let e = flash(&mut dev, &p).unwrap_err();
    assert!(
        matches!(
            e.downcast_ref::<FlashError>(),
            Some(FlashError::Corrupt { .. })
        ),
        "{e}"
    );
    assert!(slot_files(&dev, Slot::B).is_empty());
    assert_eq!(dev.env, env_before);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_manifest_that_does_not_match_the_files_is_refused_before_anything_is_written() {
    let root = scratch("mismatch");
    let (old_dir, old) = image_dir(&root, "old", b"kernel-old", "6.12.117-besser");
    let (new_dir, new) = image_dir(&root, "new", b"kernel-new", "6.12.117-besser");
    std::fs::write(new_dir.join("initramfs.cpio"), b"tampered").unwrap();
    let mut dev = device(&old, &old_dir);
    let before = dev.files.clone();
    let e = plan_for(&mut dev, &new_dir, &new, false).unwrap_err();
    assert!(
        matches!(&e, PlanError::ManifestMismatch { changed, .. } if changed == &["initramfs.cpio"]),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("do not match manifest.json (initramfs.cpio)"),
        "{e}"
    );
    assert_eq!(dev.files, before);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn not_enough_space_is_refused_before_anything_is_written() {
    let root = scratch("space");
    let (old_dir, old) = image_dir(&root, "old", b"kernel-old", "6.12.117-besser");
    let (new_dir, new) = image_dir(&root, "new", &vec![7u8; 4000], "6.12.117-besser");
    let mut dev = device(&old, &old_dir);
    dev.capacity = dev.used() + 3000;
    let e = plan_for(&mut dev, &new_dir, &new, false).unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::NoSpace {
                target: Slot::B,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("nothing was written"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn module_only_copies_the_module_alone_and_reloads_it() {
    let root = scratch("module");
    let (old_dir, old) = image_dir(&root, "old", b"kernel-old", "6.12.117-besser");
    let (new_dir, new) = image_dir(&root, "newmod", b"kernel-old", "6.12.117-besser");
    let mut dev = device(&old, &old_dir);
    let p = plan_for(&mut dev, &new_dir, &new, true).unwrap();
    let r = flash(&mut dev, &p).unwrap();
    let module_len = std::fs::metadata(new_dir.join(&new.driver.as_ref().unwrap().module))
        .unwrap()
        .len();
    assert_eq!(r.bytes_copied, module_len);
    assert!(dev.boots.is_empty(), "no reboot");
    assert_eq!(
        dev.running().unwrap().srcversion.as_deref(),
        Some("SRC-newmod")
    );
    // A different kernel release is refused: the module would not load.
    let (other_dir, other) = image_dir(&root, "other", b"k", "6.12.999-besser");
    let e = plan_for(&mut dev, &other_dir, &other, true).unwrap_err();
    assert!(matches!(e, PlanError::OtherKernel { .. }), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_ramp_that_reboots_marks_the_booted_slot_good_or_it_runs_out_of_tries() {
    let root = scratch("reboots");
    let (old_dir, old) = image_dir(&root, "old", b"kernel-old", "6.12.117-besser");
    // Without mark-good, three reboots spend A's tries and the fourth boot
    // finds none left (the script resets both and boots again: B is empty).
    let mut dev = device(&old, &old_dir);
    for _ in 0..3 {
        assert_eq!(dev.reboot().unwrap(), Back::Yes);
    }
    assert_eq!(dev.var("BOOT_A_LEFT").as_deref(), Some("0"));
    // With it, every reboot leaves A at 3.
    let mut dev = device(&old, &old_dir);
    for _ in 0..5 {
        assert_eq!(dev.reboot().unwrap(), Back::Yes);
        assert_eq!(
            besser_lab::flash::run::mark_booted_good(&mut dev).unwrap(),
            Some(Slot::A)
        );
        assert_eq!(dev.var("BOOT_A_LEFT").as_deref(), Some("3"));
    }
    std::fs::remove_dir_all(&root).unwrap();
}
