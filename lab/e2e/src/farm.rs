//! The farm end to end: a real `labgrid-coordinator` on 127.0.0.1, the
//! virtual device exported by a real `labgrid-exporter` as the place
//! `besser-vm`, and `besser` itself (the xtask binary running this test)
//! as the user: a ramp through `--place`; two ramps asking for the place at
//! once; a besser killed mid-rep and resumed; the coordinator stopped
//! mid-run; an unreachable coordinator.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use besser_lab::assets::{self, VmImage};
use besser_lab::farm::{self, Labgrid};

/// What the cases need from the caller.
pub struct FarmSetup<'a> {
    pub target_dir: &'a Path,
    pub image: &'a VmImage,
    /// The venv `bin/` with labgrid's three programs.
    pub labgrid_bin: &'a Path,
    /// The besser CLI (`xtask`), run as a separate process per ramp.
    pub besser: &'a Path,
}

struct Running {
    coordinator: Option<Child>,
    target_dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = besser_lab::vm::down(&self.target_dir);
        if let Some(c) = &mut self.coordinator {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn besser(s: &FarmSetup<'_>, addr: &str, args: &[&str]) -> Command {
    let mut c = Command::new(s.besser);
    c.args(["lab", "ramp", "--coordinator", addr])
        .args(args)
        .env("BESSER_FARM_WATCH_S", "2")
        .env_remove("LG_COORDINATOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > limit {
            bail!("{what}: not within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn power_cycle_through_labgrid(
    s: &FarmSetup<'_>,
    lg: &Labgrid,
    work: &Path,
    addr: &str,
) -> Result<()> {
    let www = work.join("pdu");
    for v in ["0", "1"] {
        std::fs::create_dir_all(www.join("relay/0"))?;
        std::fs::write(www.join("relay/0").join(v), "ok")?;
    }
    let port = free_port()?;
    let http_log = work.join("pdu.log");
    let mut http = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&http_log)?)
        .spawn()
        .context("python3 -m http.server")?;
    let cfg = work.join("power-exporter.yaml");
    std::fs::write(
        &cfg,
        format!(
            "besser-vm-power:\n  NetworkPowerPort:\n    model: simplerest\n    host: 'http://127.0.0.1:{port}/relay/{{index}}/{{value}}'\n    index: 0\n"
        ),
    )?;
    let mut exporter = Command::new(s.labgrid_bin.join("labgrid-exporter"))
        .args([
            "-c",
            addr,
            "--name",
            "besser-power-exporter",
            "--hostname",
            "127.0.0.1",
        ])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("power-exporter.log"))?)
        .spawn()?;
    let place = farm::vm::VM_PLACE;
    let r = (|| -> Result<()> {
        wait_for(
            "the power port is exported",
            Duration::from_secs(20),
            || {
                lg.run(&["resources"])
                    .is_ok_and(|o| o.contains("besser-vm-power/NetworkPowerPort"))
            },
        )?;
        lg.run(&["-p", place, "add-match", "*/besser-vm-power/*"])?;
        let mut lease = farm::Lease::take(
            lg,
            &farm::Want::Place(place.into()),
            false,
            &work.join("leases"),
            &mut |_| {},
        )?;
        let res = lg.resources(place)?;
        ensure!(
            res.has_power(),
            "the place shows no power resource: {:?}",
            res.classes
        );
        let cmd = lg.power_cycle_command(place);
        let st = Command::new("sh").arg("-c").arg(&cmd).status()?;
        ensure!(st.success(), "{cmd} failed ({st})");
        lease.release()?;
        lg.run(&["-p", place, "del-match", "*/besser-vm-power/*"])?;
        let log = std::fs::read_to_string(&http_log)?;
        ensure!(
            log.contains("GET /relay/0/0") && log.contains("GET /relay/0/1"),
            "the power port was not switched off and on:\n{log}"
        );
        let off = log.find("GET /relay/0/0").unwrap_or(usize::MAX);
        let on = log.rfind("GET /relay/0/1").unwrap_or(0);
        ensure!(off < on, "power cycle: on before off:\n{log}");
        Ok(())
    })();
    let _ = exporter.kill();
    let _ = exporter.wait();
    let _ = http.kill();
    let _ = http.wait();
    r
}

/// Waits until the (only) run under `runs` has started rep 1.
fn wait_inside_rep_1(runs: &Path) -> Result<()> {
    wait_for("the ramp is inside rep 1", Duration::from_secs(60), || {
        std::fs::read_dir(runs)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .is_some_and(|e| e.path().join("rep-1").is_dir())
    })
}

fn only_run_dir(runs: &Path) -> Result<PathBuf> {
    let v: Vec<PathBuf> = std::fs::read_dir(runs)
        .with_context(|| runs.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("run.json").is_file())
        .collect();
    ensure!(
        v.len() == 1,
        "{}: {} run directories",
        runs.display(),
        v.len()
    );
    Ok(v[0].clone())
}

pub fn farm_cases(s: &FarmSetup<'_>) -> Result<()> {
    let work = s.target_dir.join("farm-e2e");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let coord_log = std::fs::File::create(work.join("coordinator.log"))?;
    // Never the all-interfaces default: --listen names loopback.
    let coordinator = Command::new(s.labgrid_bin.join("labgrid-coordinator"))
        .args(["--listen", &addr])
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(coord_log.try_clone()?)
        .stderr(coord_log)
        .spawn()
        .context("starting labgrid-coordinator")?;
    let mut running = Running {
        coordinator: Some(coordinator),
        target_dir: s.target_dir.to_path_buf(),
    };
    let lg = Labgrid::new(s.labgrid_bin, &addr);
    wait_for("the coordinator answers", Duration::from_secs(20), || {
        lg.places().is_ok()
    })?;
    let keys = assets::lab_keys(s.target_dir)?;
    let vm = besser_lab::vm::up(s.target_dir, s.image, &keys)?;
    farm::vm::register(
        s.target_dir,
        &lg,
        &s.labgrid_bin.join("labgrid-exporter"),
        &vm,
    )?;
    let place = farm::vm::VM_PLACE;
    let short = ["--place", place, "--no-reboot"];

    // 1. A ramp through --place: it runs, releases, and says what it ran.
    let runs = work.join("runs-1");
    let r = runs.display().to_string();
    let o = besser(s, &addr, &short)
        .args(["--reps", "1", "--duration", "4s", "--runs-dir", &r])
        .output()?;
    ensure!(
        o.status.success(),
        "ramp through --place failed:\n{}",
        text(&o)
    );
    let dir = only_run_dir(&runs)?;
    ensure!(
        dir.join("report.md").is_file(),
        "no report.md in {}",
        dir.display()
    );
    let info = lg.show(place)?;
    ensure!(
        info.acquired.is_none(),
        "place still held after the ramp: {info:?}"
    );
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    ensure!(
        info.comment.as_deref().is_some_and(|c| c.contains(&name)),
        "the place's comment does not name the run {name}: {:?}",
        info.comment
    );
    eprintln!(
        "farm: ramp through --place {place}: ok, released, comment {:?}",
        info.comment
    );

    // 2. Two ramps at once: without --wait the second refuses, naming the
    //    holder; with --wait it queues and runs after the first released.
    let runs_a = work.join("runs-2a");
    let runs_b = work.join("runs-2b");
    let (ra, rb) = (runs_a.display().to_string(), runs_b.display().to_string());
    let first = besser(s, &addr, &short)
        .args(["--reps", "2", "--duration", "5s", "--runs-dir", &ra])
        .spawn()?;
    wait_for(
        "the first ramp holds the place",
        Duration::from_secs(60),
        || lg.show(place).is_ok_and(|i| i.acquired.is_some()),
    )?;
    let refused = besser(s, &addr, &short)
        .args(["--reps", "1", "--duration", "4s", "--runs-dir", &rb])
        .output()?;
    let rt = text(&refused);
    ensure!(
        !refused.status.success() && rt.contains("is held by") && rt.contains(&lg.identity()),
        "a second ramp without --wait did not refuse naming the holder:\n{rt}"
    );
    ensure!(
        !runs_b.exists() || std::fs::read_dir(&runs_b)?.next().is_none(),
        "the refused ramp made a run directory"
    );
    let second = besser(s, &addr, &short)
        .args([
            "--wait",
            "--reps",
            "1",
            "--duration",
            "4s",
            "--runs-dir",
            &rb,
        ])
        .spawn()?;
    let first = first.wait_with_output()?;
    let first_done = SystemTime::now();
    ensure!(
        first.status.success(),
        "the first ramp failed:\n{}",
        text(&first)
    );
    let second = second.wait_with_output()?;
    let st = text(&second);
    ensure!(second.status.success(), "the queued ramp failed:\n{st}");
    ensure!(
        st.contains(&format!("waiting for place {place}")),
        "the queued ramp did not say it waited:\n{st}"
    );
    let started = std::fs::metadata(only_run_dir(&runs_b)?.join("run.json"))?.modified()?;
    ensure!(
        started + Duration::from_secs(2) >= first_done,
        "the queued ramp started its run before the first one released the place"
    );
    eprintln!(
        "farm: a second ramp refuses without --wait, queues with it and runs after the first"
    );

    // 3. besser killed mid-rep: the place stays acquired (labgrid keeps
    //    it), the next run on this host releases it, saying whose it was,
    //    and --resume finishes the run.
    let runs_k = work.join("runs-3");
    let rk = runs_k.display().to_string();
    let mut killed = besser(s, &addr, &short)
        .args(["--reps", "2", "--duration", "8s", "--runs-dir", &rk])
        .spawn()?;
    wait_inside_rep_1(&runs_k)?;
    std::thread::sleep(Duration::from_secs(3));
    killed.kill()?;
    let _ = killed.wait();
    ensure!(
        lg.show(place)?.acquired.as_deref() == Some(&lg.identity()),
        "after the kill the place is not held by us any more"
    );
    let dir = only_run_dir(&runs_k)?;
    let d = dir.display().to_string();
    let o = besser(s, &addr, &short).args(["--resume", &d]).output()?;
    let ot = text(&o);
    ensure!(o.status.success(), "the resumed ramp failed:\n{ot}");
    ensure!(
        ot.contains("was left acquired by a besser that is gone"),
        "the rerun did not say it released a dead run's place:\n{ot}"
    );
    ensure!(dir.join("rep-2").is_dir(), "rep 2 did not run on resume");
    eprintln!(
        "farm: besser killed mid-rep -> place released by the next run, --resume finished it"
    );

    // 4. Power through labgrid: a NetworkPowerPort (simplerest, served by
    //    a local HTTP server) added to the place; the command the lab runs
    //    for `besser_reboot=power` cycles it while besser holds the place.
    power_cycle_through_labgrid(s, &lg, &work, &addr)?;
    eprintln!("farm: the place's power port is cycled through labgrid by the lab's power command");

    // 5. The coordinator stopped mid-run: the rep in flight is kept, the
    //    ramp stops before the next one with an error naming the address.
    let runs_c = work.join("runs-4");
    let rc = runs_c.display().to_string();
    let ramp = besser(s, &addr, &short)
        .args(["--reps", "3", "--duration", "5s", "--runs-dir", &rc])
        .spawn()?;
    wait_inside_rep_1(&runs_c)?;
    if let Some(mut c) = running.coordinator.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let o = ramp.wait_with_output()?;
    let ot = text(&o);
    ensure!(
        !o.status.success(),
        "the ramp went on without its coordinator:\n{ot}"
    );
    ensure!(
        ot.contains(&addr) && ot.contains("unreachable") && ot.contains("stopped before rep"),
        "the error does not say the coordinator at {addr} is gone and where it stopped:\n{ot}"
    );
    let dir = only_run_dir(&runs_c)?;
    let report =
        std::fs::read_to_string(dir.join("report.md")).context("report.md after the lost lease")?;
    ensure!(
        report.contains("rep 1") || report.contains("| 1 "),
        "rep 1 is not in the report:\n{report}"
    );
    eprintln!("farm: coordinator stopped mid-run -> rep in flight kept, clear error");

    // 6. An unreachable coordinator: a clear error, nothing started.
    let dead = format!("127.0.0.1:{}", free_port()?);
    let runs_u = work.join("runs-5");
    let ru = runs_u.display().to_string();
    let o = besser(s, &dead, &short)
        .args(["--reps", "1", "--runs-dir", &ru])
        .output()?;
    let ot = text(&o);
    ensure!(
        !o.status.success() && ot.contains(&dead) && ot.contains("unreachable"),
        "an unreachable coordinator did not give an error naming {dead}:\n{ot}"
    );
    ensure!(
        !runs_u.exists(),
        "a run directory was made although no place was held"
    );
    eprintln!("farm: unreachable coordinator -> error naming {dead}");
    drop(running);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
