//! The splat classifier against kernel logs published by others
//! (`tests/data/published/`: each file names its source, what it shows and
//! what was cut), one per kind of report, plus a busy healthy Wi-Fi boot
//! that must stay clean.

use std::fs;
use std::path::Path;

use besser_klog::splat::{find_splats, Splat, SplatKind};

/// The log part of a fixture (its `# ` header lines dropped).
fn log(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/published")
        .join(name);
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .skip_while(|l| l.starts_with("# ") || l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

fn splats(name: &str) -> Vec<Splat> {
    let text = log(name);
    let lines: Vec<&str> = text.lines().collect();
    find_splats(&lines)
}

/// `(kind, call site)` of every splat in the file.
fn seen(name: &str) -> Vec<(SplatKind, Option<String>)> {
    splats(name)
        .into_iter()
        .map(|s| (s.kind, s.call_site))
        .collect()
}

fn one(kind: SplatKind, site: &str) -> Vec<(SplatKind, Option<String>)> {
    vec![(kind, Some(site.to_string()))]
}

#[test]
fn warnings_in_both_header_forms() {
    // Kernels from 6.14 on: `WARNING: FILE:LINE at FUNC, CPU#N: comm/pid`.
    assert_eq!(
        seen("warn_new_header.txt"),
        one(
            SplatKind::Warn,
            "net/mac80211/cfg.c:501 ieee80211_add_nan_func+0x755/0x8f0"
        )
    );
    assert_eq!(
        seen("warn_classic_wifi.txt"),
        one(
            SplatKind::Warn,
            "drivers/net/wireless/intel/iwlwifi/mvm/scan.c:2359 iwl_mvm_scan_umac_v14_and_above+0x169a/0x1730 [iwlmvm]"
        )
    );
}

#[test]
fn printk_caller_prefixes_are_read_through() {
    let s = splats("printk_caller.txt");
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].kind, SplatKind::Warn);
    assert!(
        s[0].first_line.starts_with("WARNING: CPU: 0 PID: 11 at "),
        "{}",
        s[0].first_line
    );
    assert_eq!(
        s[0].call_site.as_deref(),
        Some("kernel/rcu/tree_stall.h:990 rcu_check_gp_start_stall+0x2c8/0x450")
    );
    assert_eq!(s[0].time_s, Some(179.737601));
}

#[test]
fn rcu_stalls_and_lockups() {
    assert_eq!(
        seen("rcu_stall.txt"),
        one(SplatKind::Stall, "_raw_spin_unlock_irqrestore+0xe/0x10")
    );
    assert_eq!(
        seen("soft_lockup.txt"),
        one(
            SplatKind::Lockup,
            "__kasan_check_read+0x0/0x2c mm/kasan/shadow.c:30"
        )
    );
    assert_eq!(
        seen("hard_lockup.txt"),
        one(SplatKind::Lockup, "memory_bm_find_bit+0xf4/0x100")
    );
}

/// An oops or abort and the panic it ends in are one event, with the oops's
/// call site (arm64's synchronous external abort used to be reported only
/// as the panic after it).
#[test]
fn an_oops_and_its_panic_are_one_event() {
    assert_eq!(
        seen("arm64_sea.txt"),
        one(
            SplatKind::Oops,
            "ath11k_pci_get_msi_irq+0x18b4/0x1914 [ath11k_pci]"
        )
    );
    assert_eq!(
        seen("arm64_sea_imx8ulp.txt"),
        one(SplatKind::Oops, "imx_mu_resume_noirq+0x14/0x78")
    );
    assert_eq!(
        seen("oops_panic.txt"),
        one(SplatKind::Oops, "sram_probe+0x134/0xd30")
    );
}

#[test]
fn lockdep_reports_are_one_splat_with_their_locks() {
    let s = splats("lockdep_circular.txt");
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].kind, SplatKind::Lockdep);
    assert_eq!(
        s[0].call_site.as_deref(),
        Some("iwl_mld_tzone_get_temp+0x2f/0x1d0 [iwlmld]")
    );
    assert_eq!(s[0].locks[..2], ["&rdev->wiphy.mtx", "&tz->lock"]);
    // `[ BUG: Invalid wait context ]` is lockdep's, not a BUG to swallow.
    let s = splats("invalid_wait_context.txt");
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].kind, SplatKind::Lockdep);
    assert_eq!(
        s[0].call_site.as_deref(),
        Some("regmap_update_bits_base+0x30/0x70")
    );
    assert_eq!(s[0].locks[0], "rn5t618:170:(&rn5t618_regmap_config)->lock");
    // The report's closing "turning off the locking correctness validator."
    // is part of it; the oops that follows (cut in the source) is its own.
    assert_eq!(
        seen("lockdep_turning_off.txt"),
        vec![
            (SplatKind::Lockdep, Some("tmio_mmc_irq+0x410/0x9ac".into())),
            (SplatKind::Oops, None),
        ]
    );
}

/// Hung tasks, scheduling while atomic and KASAN: the first driver frame of
/// the trace, past the scheduler, locking and reporting frames.
#[test]
fn reports_without_a_faulting_pc_get_the_first_driver_frame() {
    assert_eq!(
        seen("hung_task.txt"),
        vec![
            (
                SplatKind::Hung,
                Some("extent_write_cache_pages+0x78c/0xba0 [btrfs]".into())
            ),
            // The source's second report, cut after its first line.
            (SplatKind::Hung, None),
        ]
    );
    assert_eq!(
        seen("sched_atomic.txt"),
        one(SplatKind::Bug, "rcar_gen3_phy_usb2_init+0x180/0x1e0")
    );
    assert_eq!(
        seen("kasan.txt"),
        one(
            SplatKind::Bug,
            "ieee80211_vif_update_links+0x9df/0x1500 [mac80211]"
        )
    );
}

/// A busy brcmfmac SDIO boot ("warning", "failed", "corrupt" in healthy
/// lines) has no splat.
#[test]
fn a_healthy_wifi_boot_stays_clean() {
    assert_eq!(seen("healthy_wifi.txt"), vec![]);
}

/// Every fixture names its source.
#[test]
fn every_fixture_cites_its_source() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/published");
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let t = fs::read_to_string(&p).unwrap();
        assert!(
            t.lines()
                .next()
                .is_some_and(|l| l.starts_with("# source: https://")),
            "{}: no `# source:` line",
            p.display()
        );
    }
}
