//! The ramp report's verdicts, computed apart from the markdown that shows
//! them: the throughput series, prediction checks, the fresh-chip rule and
//! the receipts. `report::render` only writes what these return.

use crate::ramp::analysis::{RepAnalysis, RepStatus, Stats};
use serde::{Deserialize, Serialize};

use crate::ramp::analysis::{stats, within_noise};
use crate::ramp::{self, RepMeta, RunJson};

/// The throughput series the stats use: every rep with a listener count
/// except rig failures (a wedge is a result; a broken rig is not).
pub(crate) fn series(reps: &[RepAnalysis]) -> Vec<f64> {
    reps.iter()
        .filter(|r| !matches!(r.status, RepStatus::RigFailure { .. }))
        .filter_map(|r| r.mib_s)
        .collect()
}

pub(crate) fn mean_per_s(reps: &[RepAnalysis], f: &str) -> f64 {
    if reps.is_empty() {
        return 0.0;
    }
    reps.iter().map(|r| r.per_s(f)).sum::<f64>() / reps.len() as f64
}

pub(crate) fn observe(metric: &str, reps: &[RepAnalysis], st: Option<&Stats>) -> Option<f64> {
    match metric {
        "throughput_mib_s.mean" => st.map(|s| s.mean),
        "throughput_mib_s.median" => st.map(|s| s.median),
        "throughput_mib_s.min" => st.map(|s| s.min),
        "throughput_mib_s.max" => st.map(|s| s.max),
        "splats" => Some(reps.iter().map(|r| r.splats.len()).sum::<usize>() as f64),
        "scan_failures" => Some(reps.iter().map(|r| r.scan_failures).sum::<u64>() as f64),
        "wedged_reps" => Some(
            reps.iter()
                .filter(|r| matches!(r.status, RepStatus::Wedged { .. }))
                .count() as f64,
        ),
        m => {
            if let Some(f) = m.strip_prefix("dispatch_per_s.") {
                (!reps.is_empty()).then(|| mean_per_s(reps, f))
            } else {
                m.strip_prefix("dispatch_total.")
                    .map(|f| reps.iter().map(|r| r.dispatches(f)).sum::<u64>() as f64)
            }
        }
    }
}

/// Each prediction against what the reps observed (`None`: not measured).
pub(crate) fn predictions(
    p: &Predictions,
    reps: &[RepAnalysis],
    st: Option<&Stats>,
) -> Vec<PredictionResult> {
    p.predictions
        .iter()
        .map(|x| {
            let observed = observe(&x.metric, reps, st);
            PredictionResult {
                metric: x.metric.clone(),
                min: x.min,
                max: x.max,
                observed,
                holds: observed
                    .map(|o| x.min.is_none_or(|m| o >= m) && x.max.is_none_or(|m| o <= m)),
                note: x.note.clone(),
            }
        })
        .collect()
}

/// The fresh-chip rule of the maintainers' receipts (DOMAIN.md): each rep
/// on a fresh boot (its own boot_id) **or** starting inside the fresh-chip
/// uptime window; a rep that runs past the window is a warning, not a
/// failure. `failures` and `warnings` name the rep and the condition.
pub(crate) struct FreshChip {
    pub(crate) failures: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

pub(crate) fn fresh_chip(metas: &[RepMeta], reps: &[RepAnalysis], max_s: f64) -> FreshChip {
    let mut fc = FreshChip {
        failures: Vec::new(),
        warnings: Vec::new(),
    };
    for r in reps {
        let fresh_boot = metas.iter().any(|m| m.rep == r.rep && m.fresh_boot);
        let shared: Vec<String> = reps
            .iter()
            .filter(|o| o.rep != r.rep && o.boot_id == r.boot_id)
            .map(|o| o.rep.to_string())
            .collect();
        let own_boot = fresh_boot && shared.is_empty();
        let starts_inside = r.uptime_start_s.is_some_and(|u| u <= max_s);
        if !own_boot && !starts_inside {
            let boot = if !fresh_boot {
                "no fresh boot".to_string()
            } else {
                format!("its boot_id is also rep {}'s", shared.join(", "))
            };
            let start = match r.uptime_start_s {
                Some(u) => format!("started at uptime {u:.1} s > {max_s:.0} s"),
                None => "its start uptime was not read".into(),
            };
            fc.failures
                .push(format!("rep {} ({boot}, and {start})", r.rep));
        }
        if let Some(end) = r.uptime_end_s.filter(|&e| e > max_s) {
            fc.warnings.push(format!(
                "rep {} ran past the window (uptime {end:.1} s at its end)",
                r.rep
            ));
        }
    }
    fc
}

/// The ftrace events a run actually had enabled: the same set in every rep,
/// or `Err` with the per-rep sets when they differ. Reps recorded before the
/// enabled set was (`events_enabled: None`) count as the configured list.
pub fn enabled_set(
    run: &RunJson,
    reps: &[RepAnalysis],
) -> std::result::Result<Vec<String>, Vec<Vec<String>>> {
    let mut sets: Vec<Vec<String>> = reps
        .iter()
        .map(|r| {
            let mut v = r
                .events_enabled
                .clone()
                .unwrap_or_else(|| run.config.events.clone());
            v.sort();
            v
        })
        .collect();
    if reps.is_empty() {
        let mut v = run.config.events.clone();
        v.sort();
        sets.push(v);
    }
    sets.dedup();
    if sets.len() == 1 {
        Ok(sets.remove(0))
    } else {
        Err(sets)
    }
}

pub(crate) fn show_set(s: &std::result::Result<Vec<String>, Vec<Vec<String>>>) -> String {
    let one = |v: &Vec<String>| {
        if v.is_empty() {
            "[none]".to_string()
        } else {
            format!("[{}]", v.join(", "))
        }
    };
    match s {
        Ok(v) => one(v),
        Err(sets) => format!(
            "(differing between reps: {})",
            sets.iter().map(one).collect::<Vec<_>>().join(" / ")
        ),
    }
}

fn f1(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())
}

/// The receipts checklist (the maintainers' Phase 7 receipts), in order.
pub(crate) fn receipts(
    run: &RunJson,
    reps: &[RepAnalysis],
    metas: &[RepMeta],
    baselines: &[Baseline],
) -> Vec<Receipt> {
    let ser = series(reps);
    let nsplat: usize = reps.iter().map(|r| r.splats.len()).sum();
    let measured = ser.len();
    let fc = fresh_chip(metas, reps, run.device.fresh_uptime_max_s);
    let uptimes: Vec<String> = reps.iter().map(|r| f1(r.uptime_start_s)).collect();
    let ours = enabled_set(run, reps);
    let same_as = |b: &Baseline| {
        let theirs = enabled_set(&b.run, &b.reps);
        ours.is_ok() && ours == theirs && b.run.device.data.interface == run.device.data.interface
    };
    let differing: Vec<&Baseline> = baselines.iter().filter(|b| !same_as(b)).collect();
    let listeners = !reps.is_empty()
        && reps
            .iter()
            .all(|r| r.listening_verified && !matches!(r.status, RepStatus::RigFailure { .. }));
    // A fact about the link: every rep's collect ran over the inventory's
    // wired endpoint, which is not the data endpoint; and the kernel log
    // it brought back reaches the rep's marker.
    // Each rep against the endpoints of the boot it ran on (a resume may
    // bring new ones); older runs recorded only the run's device.
    let run_eps = ramp::RepEndpoints::of(&run.device);
    let eps = |m: &RepMeta| m.endpoints.clone().unwrap_or_else(|| run_eps.clone());
    let same_host_port =
        |wired: &str, data: &str| wired.rsplit_once('@').map(|(_, hp)| hp) == Some(data);
    let wired_is_data = metas.iter().any(|m| {
        let e = eps(m);
        same_host_port(&e.wired, &e.data)
    }) || (metas.is_empty() && same_host_port(&run_eps.wired, &run_eps.data));
    let wired_ep = run_eps.wired.clone();
    let off_link: Vec<String> = metas
        .iter()
        .filter(|m| m.collect_over.as_deref() != Some(eps(m).wired.as_str()))
        .map(|m| {
            format!(
                "rep {} {}",
                m.rep,
                m.collect_over
                    .as_deref()
                    .map(|e| format!("over {e}"))
                    .unwrap_or_else(|| "not recorded".into())
            )
        })
        .collect();
    let wired = !reps.is_empty()
        && !wired_is_data
        && off_link.is_empty()
        && reps.iter().all(|r| r.marker_found);
    vec![
        Receipt { ok: measured >= 3, text: format!("N ≥ 3 measured reps (N={measured}, never N=1)") },
        Receipt {
            ok: !reps.is_empty() && fc.failures.is_empty(),
            text: {
                let mut t = format!(
                    "every rep on a fresh boot or starting inside the fresh-chip window (uptime at start {} s ≤ {:.0} s)",
                    uptimes.join(" / "),
                    run.device.fresh_uptime_max_s
                );
                if !fc.failures.is_empty() {
                    t.push_str(&format!(": NOT for {}", fc.failures.join("; ")));
                }
                if !fc.warnings.is_empty() {
                    t.push_str(&format!(" — warning: {}", fc.warnings.join("; ")));
                }
                t
            },
        },
        Receipt {
            ok: !baselines.is_empty() && differing.is_empty(),
            text: match (baselines, differing.as_slice()) {
                ([], _) => "same instrumentation as a baseline (no baseline given)".into(),
                (bs, []) => format!(
                    "same instrumentation as the baseline{} {} (ftrace events, counters)",
                    if bs.len() > 1 { "s" } else { "" },
                    bs.iter().map(|b| format!("`{}`", b.name)).collect::<Vec<_>>().join(", ")
                ),
                (_, ds) => ds
                    .iter()
                    .map(|b| {
                        format!(
                            "instrumentation DIFFERS from the baseline `{}`: enabled ftrace events {} here vs {} there, data interface `{}` vs `{}`",
                            b.name,
                            show_set(&ours),
                            show_set(&enabled_set(&b.run, &b.reps)),
                            run.device.data.interface,
                            b.run.device.data.interface
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        },
        Receipt { ok: nsplat == 0 && !reps.is_empty(), text: format!("no WARN/BUG/oops/lockdep splat under stress ({nsplat} found)") },
        Receipt { ok: listeners, text: "fresh listener per rep, verified listening, bytes arrived".into() },
        Receipt {
            ok: wired,
            text: if wired_is_data {
                format!(
                    "telemetry collected over the wired link: NO, the wired endpoint {}:{} is the data endpoint",
                    run.device.wired.host, run.device.wired.port
                )
            } else if !off_link.is_empty() {
                format!(
                    "telemetry collected over the wired link ({wired_ep}): NOT shown for {}",
                    off_link.join(", ")
                )
            } else {
                format!(
                    "telemetry (counters, trace, kernel log) collected over the wired link ({}:{}) after every rep",
                    run.device.wired.host, run.device.wired.port
                )
            },
        },
    ]
}
pub const WITHIN_NOISE_RULE: &str =
    "within noise when this run's mean lies inside the baseline reps' \
     [min, max] range; outside that range the change is real";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    /// `throughput_mib_s.mean|median|min|max`, `dispatch_per_s.<fn>`,
    /// `dispatch_total.<fn>`, `splats`, `scan_failures`, `wedged_reps`.
    pub metric: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Predictions {
    pub predictions: Vec<Prediction>,
}

/// Parses a predictions file; errors carry file, line and column.
pub fn parse_predictions(text: &str, file: &str) -> anyhow::Result<Predictions> {
    let p: Predictions = serde_norway::from_str(text).map_err(|e| {
        let (l, c) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let m = e.to_string();
        let m = m.split(" at line ").next().unwrap_or(&m).to_string();
        anyhow::anyhow!("{file}:{l}:{c}: {m}")
    })?;
    for (i, x) in p.predictions.iter().enumerate() {
        if x.min.is_none() && x.max.is_none() {
            anyhow::bail!(
                "{file}: prediction {} ({}): expected `min`, `max` or both",
                i + 1,
                x.metric
            );
        }
        if !known_metric(&x.metric) {
            anyhow::bail!(
                "{file}: prediction {} : unknown metric {:?} (expected throughput_mib_s.mean|median|min|max, \
                 dispatch_per_s.FN, dispatch_total.FN, splats, scan_failures or wedged_reps)",
                i + 1,
                x.metric
            );
        }
    }
    Ok(p)
}

fn known_metric(m: &str) -> bool {
    matches!(
        m,
        "throughput_mib_s.mean"
            | "throughput_mib_s.median"
            | "throughput_mib_s.min"
            | "throughput_mib_s.max"
            | "splats"
            | "scan_failures"
            | "wedged_reps"
    ) || m
        .strip_prefix("dispatch_per_s.")
        .is_some_and(|f| !f.is_empty())
        || m.strip_prefix("dispatch_total.")
            .is_some_and(|f| !f.is_empty())
}

/// A baseline series for comparison.
pub struct Baseline {
    pub name: String,
    pub run: RunJson,
    pub reps: Vec<RepAnalysis>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub ok: bool,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictionResult {
    pub metric: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub observed: Option<f64>,
    pub holds: Option<bool>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineComparison {
    pub run: String,
    pub baseline_mib_s: Stats,
    /// This run's figures it was compared with (not in `summary.json`:
    /// they are its `throughput_mib_s`).
    #[serde(skip)]
    pub this_run: Stats,
    pub delta_percent: f64,
    pub within_noise: bool,
    pub rule: String,
}

/// How one baseline compares ([`compare_baseline`]).
pub(crate) enum BaselineVerdict {
    /// This run has no throughput figures to compare.
    NoRunFigures,
    /// The baseline has none.
    NoBaselineFigures,
    Compared {
        comparison: BaselineComparison,
        /// Per work-function column: (function, baseline's mean/s, this run's).
        dispatch: Vec<(String, f64, f64)>,
    },
}

/// This run (`reps`, whose throughput stats are `st`) against baseline `b`:
/// the Δ of the means and the within-noise verdict, plus the dispatch rates
/// of the report's work-function columns `cols`.
pub(crate) fn compare_baseline(
    b: &Baseline,
    reps: &[RepAnalysis],
    st: Option<&Stats>,
    cols: &[String],
) -> BaselineVerdict {
    let Some(s) = st else {
        return BaselineVerdict::NoRunFigures;
    };
    let Some(bs) = stats(&series(&b.reps)) else {
        return BaselineVerdict::NoBaselineFigures;
    };
    let delta = (s.mean - bs.mean) / bs.mean * 100.0;
    let within = within_noise(s.mean, &bs);
    BaselineVerdict::Compared {
        dispatch: cols
            .iter()
            .map(|c| (c.clone(), mean_per_s(&b.reps, c), mean_per_s(reps, c)))
            .collect(),
        comparison: BaselineComparison {
            run: b.name.clone(),
            baseline_mib_s: bs,
            this_run: s.clone(),
            delta_percent: delta,
            within_noise: within,
            rule: WITHIN_NOISE_RULE.into(),
        },
    }
}
