#!/usr/bin/env python3
"""Writes the ramp fixtures: two run directories shaped like the maintainers'
Patch B (baseline) and Patch C v3 (candidate) series on a PineTab2, with
real-looking kernel log splats, ftrace text and counter files. Deterministic:
re-running it rewrites the same bytes. The expected outputs are the insta
snapshots in lab/tests/snapshots/."""
import json, os, random, shutil

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20

def device():
    return {
        "name": "ohm",
        "wired": {"host": "ohm-wired.lan", "port": 22, "user": "root",
                  "auth": {"Key": "/home/lab/.ssh/id_ed25519"},
                  "known_hosts": "/home/lab/.ssh/known_hosts", "known_hosts_host": None,
                  "host_key_policy": "strict"},
        "data": {"connect_host": "ohm.lan", "connect_port": 5001, "listen_port": 5001, "interface": "wlan0"},
        "fresh_uptime_max_s": 780.0, "boot_timeout_s": 180, "reboot": {"ssh": {"command": "reboot"}},
    }

def config(label, reps, duration):
    return {"label": label, "reps": reps, "rate_bytes_per_s": 4.0 * MIB, "duration_s": duration,
            "reboot": True, "events": ["workqueue:workqueue_execute_start"], "work_fns": [],
            "stall_timeout_s": 10.0, "stop_on_wedge": False, "trace_buffer_kb": 16384,
            "baseline": None, "fault_cmd": None}

BOOT_LOG = """[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x412fd050]
[    0.000000] Linux version 6.12.0-besser (builder@ci) (clang version 14.0.6) #1 SMP PREEMPT
[    0.000000] Machine model: Pine64 PineTab2 v2.0
[    2.104311] mmc1: new ultra high speed SDR104 SDIO card at address 0001
[    3.500127] bes2600_sdio mmc1:0001:1: firmware best2002_fw_sdio.bin loaded
[    3.912044] ieee80211 phy0: Selected rate control algorithm 'minstrel_ht'
[    9.733810] wlan0: authenticate with 11:22:33:44:55:66
[    9.781502] wlan0: associated
"""

WARN_BEFORE_MARKER = """[   12.000001] ------------[ cut here ]------------
[   12.000002] WARNING: CPU: 3 PID: 1 at drivers/base/dd.c:100 probe_stub+0x10/0x20
[   12.000003] ---[ end trace 0000000000000000 ]---
"""

LOCKDEP = """[{t:>12.6f}] =====================================================
[{t:>12.6f}] WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected
[{t:>12.6f}] 6.12.0-besser #1 Not tainted
[{t:>12.6f}] -----------------------------------------------------
[{t:>12.6f}] bes2600_bh/187 [HC0[0]:SC0[2]:HE1:SE0] is trying to acquire:
[{t:>12.6f}] ffff0000c2a1e2b8 (&stats->pending_record_lock){{+.+.}}-{{2:2}}, at: bes2600_queue_remove+0x64/0x1b0 [bes2600]
[{t:>12.6f}] 
[{t:>12.6f}] and this task is already holding:
[{t:>12.6f}] ffff0000c2a1e0a0 (&queue->lock){{+.-.}}-{{2:2}}, at: bes2600_queue_remove+0x3c/0x1b0 [bes2600]
[{t:>12.6f}] which would create a new lock dependency:
[{t:>12.6f}]  (&queue->lock){{+.-.}}-{{2:2}} -> (&stats->pending_record_lock){{+.+.}}-{{2:2}}
"""

WARN = """[{t:>12.6f}] ------------[ cut here ]------------
[{t:>12.6f}] WARNING: CPU: 1 PID: 187 at drivers/staging/bes2600/bh.c:301 bes2600_bh_dec_hw_bufs_used+0x6c/0x90 [bes2600]
[{t:>12.6f}] Modules linked in: bes2600 mac80211 cfg80211 rfkill
[{t:>12.6f}] CPU: 1 UID: 0 PID: 187 Comm: bes2600_bh Not tainted 6.12.0-besser #1
[{t:>12.6f}] Hardware name: Pine64 PineTab2 v2.0 (DT)
[{t:>12.6f}] pc : bes2600_bh_dec_hw_bufs_used+0x6c/0x90 [bes2600]
[{t:>12.6f}] lr : bes2600_bh_rx_helper+0x1a4/0x2c0 [bes2600]
[{t:>12.6f}] Call trace:
[{t:>12.6f}]  bes2600_bh_dec_hw_bufs_used+0x6c/0x90 [bes2600]
[{t:>12.6f}]  bes2600_bh+0x3c8/0x7a0 [bes2600]
[{t:>12.6f}]  kthread+0x110/0x114
[{t:>12.6f}] ---[ end trace 0000000000000000 ]---
"""

OOPS = """[{t:>12.6f}] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008
[{t:>12.6f}] Mem abort info:
[{t:>12.6f}]   ESR = 0x0000000096000006
[{t:>12.6f}] Internal error: Oops: 0000000096000006 [#1] PREEMPT SMP
[{t:>12.6f}] Modules linked in: bes2600 mac80211 cfg80211 rfkill
[{t:>12.6f}] CPU: 2 UID: 0 PID: 212 Comm: kworker/u8:3 Tainted: G        W          6.12.0-besser #1
[{t:>12.6f}] pc : bes2600_tx_confirm_cb+0x88/0x2c0 [bes2600]
[{t:>12.6f}] lr : wsm_handle_rx+0x31c/0x9a0 [bes2600]
"""

KERNEL_BUG = """[{t:>12.6f}] kernel BUG at drivers/staging/bes2600/queue.c:530!
[{t:>12.6f}] Internal error: Oops - BUG: 00000000f2000800 [#2] PREEMPT SMP
[{t:>12.6f}] pc : bes2600_queue_requeue+0x120/0x130 [bes2600]
"""

SCAN_FAIL = """[{t:>12.6f}] bes2600_wlan: wsm_generic_confirm failed for request 0x0007.
[{t:>12.6f}] bes2600_wlan: [SCAN] Scan failed (-22).
"""

def trace(rng, t0, dur, rates):
    events = []
    for fn, n in rates:
        for _ in range(n):
            events.append((t0 + rng.random() * dur, fn))
    events.sort()
    total = len(events)
    head = f"""# tracer: nop
#
# entries-in-buffer/entries-written: {total}/{total}   #P:4
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""
    lines = []
    for t, fn in events:
        cpu = rng.randrange(4)
        worker = f"kworker/{cpu}:{rng.randrange(1, 3)}"
        ws = rng.randrange(1 << 32)
        lines.append(f"{worker:>16}-{100 + cpu:<5} [{cpu:03d}] d..1. {t:12.6f}: workqueue_execute_start: work struct 00000000{ws:08x}: function {fn}")
    return head + "\n".join(lines) + ("\n" if lines else "")

def counters(rx_bytes, rx_packets):
    return (f"rx_bytes {rx_bytes}\nrx_packets {rx_packets}\nrx_dropped 0\nrx_errors 0\n"
            f"tx_bytes {rx_packets * 66}\ntx_packets {rx_packets // 2}\n")

def write_run(name, label, duration, reps):
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    created = 1778181000 if name == "candidate" else 1778170000
    run = {"kind": "ramp", "created_unix_s": created, "config": config(label, len(reps), duration),
           "device": device(), "kernel_release": "6.12.0-besser"}
    json.dump(run, open(os.path.join(d, "run.json"), "w"), indent=2)
    rng = random.Random(name)
    for i, r in enumerate(reps, 1):
        rd = os.path.join(d, f"rep-{i}")
        os.makedirs(rd)
        up0 = r["uptime"]
        boot_id = f"{rng.randrange(1 << 32):08x}-0f1e-4d2c-8b7a-{rng.randrange(1 << 48):012x}"
        open(os.path.join(rd, "boot.txt"), "w").write(f"{boot_id}\n{up0:.2f} {up0 * 3.7:.2f}\n")
        rx0, pk0 = 91_234 + i * 17, 1_021 + i
        got = r["bytes"]
        pk = got // 1448 + 311
        open(os.path.join(rd, "counters-before.txt"), "w").write(counters(rx0, pk0))
        open(os.path.join(rd, "counters-after.txt"), "w").write(counters(rx0 + got + pk * 52, pk0 + pk))
        open(os.path.join(rd, "listener.txt"), "w").write(f"{got}\n")
        el = r["elapsed"]
        sent = r.get("sent", int(4 * MIB * el))
        per = [int(4 * MIB)] * int(el) + [sent - int(4 * MIB) * int(el)]
        outcome = r.get("outcome", {"kind": "completed"})
        json.dump({"target": "ohm.lan:5001", "rate_bytes_per_s": 4.0 * MIB, "duration_s": duration,
                   "bytes_sent": sent, "elapsed_s": el, "per_second": per, "outcome": outcome},
                  open(os.path.join(rd, "sender.json"), "w"), indent=2)
        mon = []
        for s in range(1, int(el) + 1, 10):
            frac = min(1.0, s / el)
            mon.append({"t_s": float(s), "rx_bytes": rx0 + int(got * frac), "listener_alive": True})
        json.dump(mon, open(os.path.join(rd, "monitor.json"), "w"), indent=2)
        marker = f"besser-lab: {name} rep {i} start"
        t = up0 + 0.4
        log = BOOT_LOG + WARN_BEFORE_MARKER + f"[{t:>12.6f}] {marker}\n"
        for kind in r.get("splats", []):
            t += 17.3
            log += {"lockdep": LOCKDEP, "warn": WARN, "oops": OOPS, "bug": KERNEL_BUG, "scan": SCAN_FAIL}[kind].format(t=t)
        open(os.path.join(rd, "dmesg.txt"), "w").write(log)
        open(os.path.join(rd, "trace.txt"), "w").write(trace(rng, up0 + 0.5, el, r["trace"]))
        open(os.path.join(rd, "uptime-end.txt"), "w").write(f"{up0 + el + 3.1:.2f} {up0 * 4:.2f}\n")
        meta = {"rep": i, "marker": marker, "started_unix_s": created + i * 400, "fresh_boot": True,
                "listening_verified": True, "boot_wait_s": 41.5, "total_s": el + 42.3,
                "fault_cmd": None, "wedge": r.get("wedge"),
                "collect_over": "root@ohm-wired.lan:22"}
        json.dump(meta, open(os.path.join(rd, "meta.json"), "w"), indent=2)
        open(os.path.join(d, f"rep-{i}.json"), "w").write("{}\n")  # presence marks a finished rep

# Patch B-like baseline: 10-s reps (kept short so the trace files stay small).
write_run("baseline", "patch-b", 10.0, [
    {"uptime": 212.4, "elapsed": 10.02, "bytes": int(1.362 * MIB * 10.02),
     "trace": [("sdio_rx_work", 864), ("sdio_tx_work", 2761), ("bes2600_bh_work", 0)]},
    {"uptime": 198.7, "elapsed": 10.01, "bytes": int(1.401 * MIB * 10.01),
     "trace": [("sdio_rx_work", 871), ("sdio_tx_work", 2790)]},
    {"uptime": 205.0, "elapsed": 10.03, "bytes": int(1.297 * MIB * 10.03),
     "trace": [("sdio_rx_work", 850), ("sdio_tx_work", 2702), ("vmstat_update", 10)]},
])

# Patch C v3-like candidate: the maintainers' three reps (bytes, elapsed,
# sdio_tx_work counts), plus splats and a scan-failure storm for the parsers.
write_run("candidate", "patch-c-v3", 180.0, [
    {"uptime": 200.0, "elapsed": 180.72, "bytes": 447_758_333,
     "trace": [("sdio_tx_work", 368), ("vmstat_update", 180)], "splats": ["scan"]},
    {"uptime": 391.0, "elapsed": 180.67, "bytes": 490_669_836,
     "trace": [("sdio_tx_work", 20), ("vmstat_update", 181)], "splats": ["lockdep"]},
    {"uptime": 582.0, "elapsed": 180.69, "bytes": 398_224_992,
     "trace": [("sdio_tx_work", 39), ("vmstat_update", 179)], "splats": ["warn", "scan", "oops", "bug"]},
])

open(os.path.join(HERE, "candidate", "predictions.yaml"), "w").write("""predictions:
  - metric: dispatch_per_s.sdio_rx_work
    max: 0
    note: function deleted
  - metric: dispatch_total.bes2600_bh_work
    max: 0
    note: no bh redispatches
  - metric: throughput_mib_s.min
    min: 1.0
    note: floor lifts toward >= 1 MB/s
  - metric: splats
    max: 0
""")
