#!/usr/bin/env python3
"""Writes the capture fixtures (raw run directories) beside this script.

The data is synthetic but shaped like the maintainers' observations (Phase 0
plan, ../../../../shared/background/notes-log-c2-plan-bug5-phase0-c-v2-v3.txt):
fresh chip ~2.3 MiB/s at a 4 MiB/s cap, scan failures (`wsm_generic_confirm
failed for request 0x0007` + `[SCAN] Scan failed (-22)`) every 301-302 s from
uptime 778 s, RX collapse to ~600 then ~180 B/s near 28 min while associated.
Deterministic (fixed seed); the expected analysis lives in expected/ in each
fixture directory (insta snapshots). Re-run only to change the fixtures:
    python3 lab/tests/data/capture/make_fixtures.py
"""
import json, os, random

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20
T0_EPOCH = 1778188738  # rig armed 2026-05-07 23:18:58 CEST, from their notes

EVENTS = [
    "workqueue/workqueue_queue_work", "workqueue/workqueue_execute_start",
    "mac80211/drv_hw_scan", "mac80211/api_beacon_loss", "mac80211/api_connection_loss",
    "mac80211/api_disconnect", "mac80211/drv_set_key", "cfg80211/rdev_assoc",
    "cfg80211/rdev_deauth", "cfg80211/rdev_disassoc", "cfg80211/cfg80211_scan_done",
    "power/suspend_resume", "mmc/mmc_request_start", "mmc/mmc_request_done",
]


class Fixture:
    def __init__(self, name, seed, duration_s, probes, probe_len_s, kmsg_form="dmesg"):
        self.dir = os.path.join(HERE, name)
        self.rng = random.Random(seed)
        self.duration_s = duration_s
        self.probe_sched = probes
        self.probe_len_s = probe_len_s
        self.kmsg = []   # (t, text)
        self.trace = []  # (t, line-without-timestamp-prefix parts)
        self.iw = []     # (t, text)
        self.probes = []
        self.gaps = []
        self.kmsg_form = kmsg_form
        self.bg_bytes_per_s = 70.0
        self.pushes = []  # (start, end, bytes)

    def k(self, t, text, prio=None):
        self.kmsg.append((t, text, prio))

    def tr(self, t, task, cpu, flags, event, detail):
        self.trace.append((t, task, cpu, flags, event, detail))

    def probe(self, idx, sched, mib_s, outcome="ok", note=None, markers=(True, True), elapsed=None):
        start = sched + 0.35 + self.rng.random() * 0.2
        elapsed = self.probe_len_s + 0.02 + self.rng.random() * 0.05 if elapsed is None else elapsed
        end = start + elapsed + 0.1
        # on the interface: the probe's rate; the listener sees ~96.5% of it
        # (headers), plus what drains after the push on a healthy link
        on_air = int(mib_s * MIB * elapsed) if outcome != "failed" else 0
        received = int(on_air / 1.035) + (int(0.4 * MIB) if outcome == "ok" and mib_s > 0.5 else 0)
        sent = int(on_air / 1.035) + int(0.4 * MIB) if outcome != "failed" else 0
        if markers[0]:
            self.k(start - 0.2, f"besser-capture: probe {idx} start")
        if markers[1]:
            self.k(end + 0.05, f"besser-capture: probe {idx} end")
        rec = dict(index=idx, scheduled_uptime_s=float(sched), start_uptime_s=round(start, 3),
                   end_uptime_s=round(end, 3), elapsed_s=round(elapsed, 3), bytes_sent=sent,
                   bytes_received=received, rx_bytes_before=None, rx_bytes_after=None,
                   outcome=outcome)
        if note:
            rec["note"] = note
        self.probes.append(rec)
        if received:
            self.pushes.append((start, start + elapsed, on_air))
            # workqueue traffic while data flows: bh work every ~0.5 s (sampled)
            t = start
            while t < start + elapsed:
                self.tr(t, "kworker/u9:1", 1, "d..1.", "workqueue_queue_work",
                        "work struct=00000000a1b2c3d4 function=bes2600_bh_work workqueue=bes2600_bh req_cpu=4 cpu=4294967295")
                self.tr(t + 0.0004, "kworker/u9:1", 1, "....1", "workqueue_execute_start",
                        "work struct 00000000a1b2c3d4: function bes2600_bh_work")
                self.tr(t + 0.001, "kworker/u9:1", 1, "....1", "mmc_request_start",
                        "mmc1: start struct mmc_request[00000000d1c2b3a4]: cmd_opcode=53 cmd_arg=0x15000200")
                self.tr(t + 0.0013, "<idle>", 0, "d.h2.", "mmc_request_done",
                        "mmc1: end struct mmc_request[00000000d1c2b3a4]: cmd_opcode=53 cmd_err=0")
                t += 1.0 if mib_s > 0.5 else 6.0

    def rx_bytes(self, t):
        b = self.bg_bytes_per_s * t
        for (s, e, n) in self.pushes:
            if t >= e:
                b += n
            elif t > s:
                b += n * (t - s) / (e - s)
        return int(b)

    def write(self, run, arm, counters_every_s=30.0, counter_edits=None, iw=True, extra_trace=(), extra_kmsg=()):
        os.makedirs(os.path.join(self.dir, "streams"), exist_ok=True)
        for p in self.probes:
            if p["outcome"] != "failed":
                p["rx_bytes_before"] = self.rx_bytes(p["start_uptime_s"] - 0.01)
                p["rx_bytes_after"] = self.rx_bytes(p["start_uptime_s"] + p["elapsed_s"] + 0.01)
        with open(os.path.join(self.dir, "run.json"), "w") as f:
            json.dump(run, f, indent=2)
            f.write("\n")
        with open(os.path.join(self.dir, "arm.json"), "w") as f:
            json.dump(arm, f, indent=2)
            f.write("\n")
        with open(os.path.join(self.dir, "probes.jsonl"), "w") as f:
            for p in self.probes:
                f.write(json.dumps(p) + "\n")
        if self.gaps:
            with open(os.path.join(self.dir, "gaps.jsonl"), "w") as f:
                for g in self.gaps:
                    f.write(json.dumps(g) + "\n")
        # kernel log
        lines = []
        for seq, (t, text, prio) in enumerate(sorted(self.kmsg, key=lambda x: x[0])):
            if self.kmsg_form == "dmesg":
                lines.append(f"[{t:12.6f}] {text}")
            else:
                if prio is None:
                    prio = 3 if "failed" in text else 6
                lines.append(f"{prio},{seq + 1000},{int(round(t * 1e6))},-;{text}")
        lines.extend(extra_kmsg)
        with open(os.path.join(self.dir, "streams/kmsg.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        # ftrace (trace_pipe: no header)
        out = []
        pids = {}
        for (t, task, cpu, flags, event, detail) in sorted(self.trace, key=lambda x: x[0]):
            pid = pids.setdefault(task, 0 if task == "<idle>" else 100 + len(pids) * 37)
            out.append(f"{(task + '-' + str(pid)):>22} [{cpu:03d}] {flags} {t:12.6f}: {event}: {detail}")
        out.extend(extra_trace)
        with open(os.path.join(self.dir, "streams/trace.txt"), "w") as f:
            f.write("\n".join(out) + "\n")
        # iw event -t (device wall clock)
        if iw:
            with open(os.path.join(self.dir, "streams/iw-event.txt"), "w") as f:
                for (t, text) in sorted(self.iw, key=lambda x: x[0]):
                    f.write(f"{T0_EPOCH + t:.6f}: {text}\n")
        # counters every 30 s from the moment the loop started
        snaps = []
        t = 31.7
        while t <= self.duration_s + 0.01:
            up = t + self.rng.random() * 0.05
            rxb = self.rx_bytes(up)
            snaps.append(f"snap uptime={up:.2f} epoch={int(T0_EPOCH + up)} rx_bytes={rxb} rx_packets={rxb // 1480 + int(up)}")
            t += counters_every_s
        if counter_edits:
            counter_edits(snaps)
        with open(os.path.join(self.dir, "streams/counters.txt"), "w") as f:
            f.write("\n".join(snaps) + "\n")


def boot_log(fx):
    fx.k(0.0, "Booting Linux on physical CPU 0x0000000000 [0x412fd050]")
    fx.k(0.0, "Linux version 6.12.0-danctnix1-1-pinetab2 (linux-pinetab2@archlinuxarm) #1 SMP PREEMPT")
    fx.k(2.913, "mmc1: new high speed SDIO card at address 0001")
    fx.k(6.104, "bes2600_wlan: bes2600 wifi driver init, firmware best2002_fw_sdio.bin")
    fx.k(9.870, "wlan0: authenticate with 3c:a6:2f:00:00:01 (local address=02:ba:d0:00:00:02)")
    fx.k(9.912, "wlan0: associated")
    fx.tr(9.801, "NetworkManager", 2, "....1", "rdev_assoc", "phy0, netdev:wlan0(3), bssid: 3c:a6:2f:00:00:01")
    fx.tr(9.930, "wpa_supplicant", 3, "....1", "drv_set_key", "phy0 vif:wlan0(2) sta:3c:a6:2f:00:00:01 cipher:0xfac04 key_idx:0")
    fx.k(11.5, "besser-capture: armed")


def scans(fx, every_s, until_s, fail_from_s=None, fail_every=(301.0, 302.0)):
    """NetworkManager scans every `every_s`; from `fail_from_s` on, the firmware
    rejects one scan every ~301-302 s (the 5 GHz split)."""
    t = 45.0
    while t < until_s:
        fx.tr(t, "NetworkManager", 2, "....1", "drv_hw_scan", "phy0 vif:wlan0(2)")
        fx.iw.append((t + 0.01, "wlan0 (phy #0): scan started"))
        fx.tr(t + 3.1, "kworker/u8:2", 0, "....1", "cfg80211_scan_done", "aborted: false, scan start (TSF): 0, tsf_bssid: 00:00:00:00:00:00")
        fx.iw.append((t + 3.11, "wlan0 (phy #0): scan finished: 2412 2437 2462 5180 5200, \"\""))
        t += every_s
    if fail_from_s is not None:
        t = fail_from_s
        while t < until_s:
            fx.tr(t - 0.02, "NetworkManager", 2, "....1", "drv_hw_scan", "phy0 vif:wlan0(2)")
            fx.k(t, "bes2600_wlan: wsm_generic_confirm failed for request 0x0007.")
            fx.k(t + 0.0012, "ieee80211 phy0: [SCAN] Scan failed (-22)")
            fx.tr(t + 0.002, "kworker/u8:2", 0, "....1", "cfg80211_scan_done", "aborted: true, scan start (TSF): 0, tsf_bssid: 00:00:00:00:00:00")
            fx.iw.append((t + 0.003, "wlan0 (phy #0): scan aborted: \"\""))
            t += fx.rng.uniform(*fail_every)


def splats(fx):
    """A WARN (finding 1's hw_bufs_used underflow) and a lockdep report
    (finding 3's SOFTIRQ-safe -> SOFTIRQ-unsafe inversion), as an arm64
    kernel prints them: one record per line, at KERN_WARNING."""
    warn = [
        "------------[ cut here ]------------",
        "WARNING: CPU: 2 PID: 211 at drivers/staging/bes2600/bh.c:587 bes2600_bh_rx_helper+0x2d8/0x3a0 [bes2600]",
        "Modules linked in: bes2600 mac80211 cfg80211 rfkill",
        "CPU: 2 UID: 0 PID: 211 Comm: bes2600_bh Tainted: G         C         6.12.0-danctnix1-1-pinetab2 #1",
        "Hardware name: Pine64 PineTab2 (DT)",
        "pc : bes2600_bh_rx_helper+0x2d8/0x3a0 [bes2600]",
        "lr : bes2600_bh+0x1f4/0x5c0 [bes2600]",
        "---[ end trace 0000000000000000 ]---",
    ]
    lockdep = [
        "=====================================================",
        "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected",
        "6.12.0-danctnix1-1-pinetab2 #1 Tainted: G        W C",
        "-----------------------------------------------------",
        "kworker/u8:2/87 [HC0[0]:SC0[0]:HE1:SE1] is trying to acquire:",
        "ffff0000c3d1a8f8 (&priv->pending_record_lock){+.+.}-{2:2}, at: bes2600_queue_put+0x5c/0x1e8 [bes2600]",
    ]
    for t0, lines in [(652.31, warn), (1003.72, lockdep)]:
        for i, text in enumerate(lines):
            fx.k(t0 + i * 1e-5, text, prio=4)


def run_json(label, device, boot_id, duration_s, probes, probe_len_s, events=EVENTS):
    return dict(kind="capture", label=label, device=device, started_utc="2026-05-07T21:18:58Z",
                boot_id=boot_id, kernel_release="6.12.0-danctnix1-1-pinetab2",
                config=dict(duration_s=duration_s, probes_s=probes, probe_len_s=probe_len_s,
                            rate_bytes_per_s=4 * MIB, events=events, data_iface="wlan0",
                            collapse_fraction=0.5, good_fraction=0.8))


def phase0_shaped():
    probes = [300.0, 600.0, 900.0, 1200.0, 1500.0, 1680.0, 1980.0]
    fx = Fixture("phase0-shaped", 5, 2100.0, probes, 30.0)
    boot_log(fx)
    scans(fx, 120.0, 2100.0, fail_from_s=778.2)
    for i, (s, v) in enumerate(zip(probes, [2.363, 2.412, 2.290, 2.251, 2.305, 600 / MIB, 180 / MIB])):
        fx.probe(i + 1, s, v, outcome="ok" if v > 0.01 else "wedged",
                 note=None if v > 0.01 else "sender saw no progress for 10 s; link still associated")
    fx.write(run_json("bug5-phase0", "ohm", "9d5c7d7e-5a4e-4a4b-9a5e-0c1d2e3f4a5b", 2100.0, probes, 30.0),
             dict(enabled_events=EVENTS, missing_events=[], iw_available=True, armed_uptime_s=11.5))


def gradual_with_disconnect():
    probes = [120.0, 360.0, 600.0, 840.0, 1080.0]
    fx = Fixture("gradual-disconnect", 7, 1200.0, probes, 20.0, kmsg_form="kmsg")
    boot_log(fx)
    scans(fx, 240.0, 1200.0)
    levels = [2.20, 1.93, 1.52, 0.90, 0.31]
    for i, (s, v) in enumerate(zip(probes, levels)):
        fx.probe(i + 1, s, v, outcome="wedged" if i == 4 else "ok",
                 note="no bytes for 10 s after 6.2 s; listener still up" if i == 4 else None,
                 markers=(True, i != 2), elapsed=6.2 if i == 4 else None)
    fx.tr(700.25, "kworker/u8:0", 0, "....1", "api_beacon_loss", "phy0 vif:wlan0(2)")
    fx.k(700.9, "wlan0: Connection to AP 3c:a6:2f:00:00:01 lost")
    fx.iw.append((705.4, "wlan0 (phy #0): disconnected (by AP) reason: 4: Disassociated due to inactivity"))
    fx.tr(709.8, "NetworkManager", 2, "....1", "rdev_assoc", "phy0, netdev:wlan0(3), bssid: 3c:a6:2f:00:00:01")
    splats(fx)
    fx.gaps.append(dict(stream="kmsg", from_uptime_s=612.4, to_uptime_s=641.0,
                        reason="SSH channel closed (connection reset); reconnected"))

    def reset(snaps):
        # the interface was re-created at ~720 s: counters restart near zero
        def field(s, k):
            return int(next(w for w in s.split() if w.startswith(k + "=")).split("=")[1])
        first = next(i for i, s in enumerate(snaps) if float(s.split()[1].split("=")[1]) > 720)
        base_b, base_p = field(snaps[first], "rx_bytes") - 2048, field(snaps[first], "rx_packets") - 3
        for i in range(first, len(snaps)):
            parts = snaps[i].split()
            parts[3] = f"rx_bytes={field(snaps[i], 'rx_bytes') - base_b}"
            parts[4] = f"rx_packets={field(snaps[i], 'rx_packets') - base_p}"
            snaps[i] = " ".join(parts)
        # a line cut short when the SSH channel dropped at 612 s
        at = next(i for i, s in enumerate(snaps) if float(s.split()[1].split("=")[1]) > 612)
        snaps.insert(at, "snap uptime=6")

    fx.write(run_json("gradual", "vm", "1b2c3d4e-0000-4000-8000-000000000002", 1200.0, probes, 20.0),
             dict(enabled_events=[e for e in EVENTS if not e.startswith("mmc/") and e != "power/suspend_resume"],
                  missing_events=["mmc/mmc_request_start", "mmc/mmc_request_done", "power/suspend_resume"],
                  iw_available=True, armed_uptime_s=11.9),
             counter_edits=reset,
             extra_trace=["kworker/u8:2-45 [000] ....1 1190.000", "CPU:1 [LOST 17 EVENTS]"],
             extra_kmsg=["6,99999,1199"])


def healthy():
    probes = [60.0, 180.0, 300.0]
    fx = Fixture("healthy-no-iw", 11, 400.0, probes, 10.0)
    boot_log(fx)
    scans(fx, 120.0, 400.0)
    fx.probe(1, 60.0, 2.402)
    fx.probe(2, 180.0, 0.0, outcome="failed", note="listener on port 12345 did not start within 5 s",
             markers=(True, True), elapsed=0.0)
    fx.probe(3, 300.0, 2.118)
    fx.write(run_json("healthy", "vm", "22222222-3333-4444-8555-666666666666", 400.0, probes, 10.0),
             dict(enabled_events=EVENTS, missing_events=[], iw_available=False, armed_uptime_s=11.2),
             iw=False)


if __name__ == "__main__":
    phase0_shaped()
    gradual_with_disconnect()
    healthy()
