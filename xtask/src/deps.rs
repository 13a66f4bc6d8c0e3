//! What the host needs, and installing it: Debian packages (as root; otherwise
//! the exact `apt-get install` line to run) and pinned cargo-installed tools.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

/// Where heavy, reusable artifacts live (kernels, tools, VM images):
/// `$BESSER_CACHE`, else `~/.cache/besser`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BESSER_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache").join("besser")
}

pub fn is_root(sh: &Shell) -> bool {
    cmd!(sh, "id -u")
        .quiet()
        .read()
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// Whether a Debian package (`name` or `name=version`) is installed.
pub fn deb_installed(sh: &Shell, pkg: &str) -> bool {
    let name = pkg.split('=').next().unwrap_or(pkg);
    let fmt = "-f=${Status}";
    cmd!(sh, "dpkg-query -W {fmt} {name}")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|s| s.contains("install ok installed"))
        .unwrap_or(false)
}

/// A version line of `apt-cache policy` (`field` = `Installed:` or `Candidate:`).
pub fn deb_version(sh: &Shell, pkg: &str, field: &str) -> Option<String> {
    let out = cmd!(sh, "apt-cache policy {pkg}")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix(field).map(|v| v.trim().to_string()))
        .filter(|v| v != "(none)")
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Makes sure the Debian packages are installed. As root, installs what is
/// missing; otherwise fails naming exactly what to install.
pub fn ensure_debs(sh: &Shell, pkgs: &[&str]) -> Result<()> {
    let missing: Vec<String> = pkgs
        .iter()
        .filter(|p| !deb_installed(sh, p))
        .map(|p| p.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root(sh) {
        bail!(
            "missing Debian packages: {}\nrun as root: apt-get update && apt-get install -y {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        cmd!(sh, "apt-get update -q")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .context("apt-get update")?;
    }
    let mut args = missing.clone();
    // Pitfall seen on these machines: a qemu-utils from a newer release
    // `Breaks` Debian's qemu-system-common. Align it with the qemu-system
    // candidate (a downgrade if need be).
    if let Some(sys) = missing.iter().find(|p| p.starts_with("qemu-system-")) {
        if let (Some(inst), Some(cand)) = (
            deb_version(sh, "qemu-utils", "Installed:"),
            deb_version(sh, sys, "Candidate:"),
        ) {
            if inst != cand {
                eprintln!(
                    "note: qemu-utils {inst} is installed, but Debian's {sys} {cand} is what besser's VMs \
                     run, and its qemu-system-common Breaks other qemu-utils versions: qemu-utils is \
                     set to {cand} as well"
                );
                args.push(format!("qemu-utils={cand}"));
            }
        }
    }
    // Say what changes on the machine beyond new packages before changing it.
    let sim_args = args.clone();
    if let Ok(sim) = cmd!(
        sh,
        "apt-get -s install -q --allow-downgrades --no-install-recommends {sim_args...}"
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .ignore_status()
    .read()
    {
        let changes = installed_changes(&sim);
        if !changes.is_empty() {
            eprintln!(
                "installing {} changes packages already on this machine:\n  {}",
                missing.join(" "),
                changes.join("\n  ")
            );
        }
    }
    let what = args.join(" ");
    cmd!(
        sh,
        "apt-get install -y -q --allow-downgrades --no-install-recommends {args...}"
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .run()
    .with_context(|| format!("apt-get install {what}"))?;
    Ok(())
}

/// A pinned tool from crates.io, installed under the cache (not `~/.cargo`),
/// so its version is part of what we hash. Returns the binary's path.
pub fn ensure_cargo_tool(sh: &Shell, krate: &str, version: &str, bin: &str) -> Result<PathBuf> {
    let root = cache_dir().join("tools").join(format!("{krate}-{version}"));
    let path = root.join("bin").join(bin);
    if path.exists() {
        return Ok(path);
    }
    eprintln!(
        "installing {krate} {version} from crates.io (once; cached in {})",
        root.display()
    );
    let spec = format!("{krate}@{version}");
    cmd!(sh, "cargo install --locked --quiet --root {root} {spec}")
        .run()
        .with_context(|| format!("cargo install {spec}"))?;
    if !path.exists() {
        bail!("cargo install {spec} did not produce {}", path.display());
    }
    Ok(path)
}

/// A Python virtual environment under the cache with exactly these pinned
/// requirements (`name==version`), created once: PyPI tools (oelint-adv, kas,
/// labgrid) never touch the system's Python. Returns the venv's `bin/`.
pub fn ensure_venv(sh: &Shell, name: &str, requirements: &[&str]) -> Result<PathBuf> {
    for r in requirements {
        if !r.contains("==") {
            bail!("{name}: requirement `{r}` is not pinned (`name==version`)");
        }
    }
    let key = besser_image::sha256_hex(requirements.join("\n").as_bytes());
    let dir = cache_dir()
        .join("tools")
        .join(format!("venv-{name}-{}", &key[..12]));
    let bin = dir.join("bin");
    let done = dir.join(".besser-complete");
    if done.exists() {
        return Ok(bin);
    }
    ensure_debs(sh, &["python3-venv"])?;
    eprintln!(
        "installing {} from PyPI into {} (once)",
        requirements.join(" "),
        dir.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
    cmd!(sh, "python3 -m venv {dir}")
        .quiet()
        .run()
        .with_context(|| format!("python3 -m venv {}", dir.display()))?;
    let pip = bin.join("pip");
    cmd!(
        sh,
        "{pip} install --quiet --disable-pip-version-check {requirements...}"
    )
    .run()
    .with_context(|| format!("pip install {}", requirements.join(" ")))?;
    std::fs::write(&done, requirements.join("\n"))?;
    Ok(bin)
}

/// Makes sure a rustup component is installed (e.g. `rust-src`).
pub fn ensure_rustup_component(sh: &Shell, component: &str) -> Result<()> {
    let installed = cmd!(sh, "rustup component list --installed")
        .quiet()
        .read()
        .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with(component)) {
        return Ok(());
    }
    cmd!(sh, "rustup component add {component}")
        .run()
        .with_context(|| format!("rustup component add {component}"))?;
    Ok(())
}

/// Makes sure a rustup target's standard library is installed.
pub fn ensure_rustup_target(sh: &Shell, target: &str) -> Result<()> {
    let installed = cmd!(sh, "rustup target list --installed")
        .quiet()
        .read()
        .unwrap_or_default();
    if installed.lines().any(|l| l.trim() == target) {
        return Ok(());
    }
    cmd!(sh, "rustup target add {target}")
        .run()
        .with_context(|| format!("rustup target add {target}"))?;
    Ok(())
}

/// What an `apt-get -s install` would do to packages already installed:
/// `Inst NAME [OLD] (NEW …)` is an upgrade or downgrade, `Remv NAME [OLD]`
/// a removal. New packages (`Inst NAME (NEW …)`) are not listed.
pub fn installed_changes(simulation: &str) -> Vec<String> {
    simulation
        .lines()
        .filter_map(|l| {
            if let Some(rest) = l.strip_prefix("Inst ") {
                let (name, rest) = rest.split_once(' ')?;
                let old = rest.strip_prefix('[')?.split_once(']')?.0;
                let new = rest.split_once('(')?.1.split_whitespace().next()?;
                Some(format!("{name} {old} -> {new}"))
            } else if let Some(rest) = l.strip_prefix("Remv ") {
                let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                let old = rest
                    .strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .map(|(o, _)| o);
                Some(format!("{name} {} -> removed", old.unwrap_or("?")))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod apt_tests {
    #[test]
    fn a_simulated_install_lists_what_changes_on_the_machine() {
        let sim = "NOTE: This is only a simulation!\n\
            Inst qemu-utils [1:10.0.2+ds-1~bpo12+1] (1:7.2+dfsg-7+deb12u7 Debian:12.7/stable [amd64])\n\
            Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u7 Debian:12.7/stable [amd64])\n\
            Remv qemu-block-extra [1:10.0.2+ds-1~bpo12+1]\n\
            Conf qemu-utils (1:7.2+dfsg-7+deb12u7 Debian:12.7/stable [amd64])\n";
        assert_eq!(
            super::installed_changes(sim),
            [
                "qemu-utils 1:10.0.2+ds-1~bpo12+1 -> 1:7.2+dfsg-7+deb12u7",
                "qemu-block-extra 1:10.0.2+ds-1~bpo12+1 -> removed",
            ]
        );
    }
}
