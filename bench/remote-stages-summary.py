#!/usr/bin/env python3
"""Median table of bench/remote-stages.sh: remote-stages-summary.py FILE.jsonl [RUN_ID]

One row per server: load runs (ok/all), accepted and end-to-end msgs/s (medians), the accepted
rate's share of bridge-bun's (the bridge alone, when it ran), peak RSS under load (median, the
server's process tree only: never the milter, rspamd or policy daemon), messages lost (sum); then the 50 MiB message: wall time, peak RSS (medians) and delivered/runs.
Only lines of RUN_ID (default: the file's last run) are summarized. Exits 1 when a run was not ok.
"""
import json
import statistics as st
import sys

path = sys.argv[1]
with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
run_id = sys.argv[2] if len(sys.argv) > 2 else (rows[-1].get("run_id") if rows else None)
rows = [r for r in rows if r.get("run_id") == run_id]


def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return st.median(xs) if xs else None


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def mib(kb):
    return None if kb is None else kb / 1024


names = list(dict.fromkeys(r["name"] for r in rows))
loads = sorted({(r["size"], r["sessions"], r["messages"]) for r in rows if r.get("mode") == "load"})
print(f"run {run_id}: {len(rows)} runs\n")
for size, sessions, messages in loads:
    print(f"### {size} B, {sessions} sessions, {messages} messages per run (medians)\n")
    print("| server | runs ok | accepted msgs/s | e2e msgs/s | share of bridge-bun | peak RSS MiB | lost |")
    print("|---|---|---|---|---|---|---|")
    this = [r for r in rows if r.get("mode") == "load" and (r["size"], r["sessions"], r["messages"]) == (size, sessions, messages)]
    alone = med([r["accept_mps"] for r in this if r["name"] == "bridge-bun" and r["status"] == "ok"])
    for n in names:
        rs = [r for r in rows if r["name"] == n and r.get("mode") == "load" and (r["size"], r["sessions"], r["messages"]) == (size, sessions, messages)]
        if not rs:
            continue
        ok = sum(1 for r in rs if r["status"] == "ok")
        lost = sum(r["lost"] for r in rs if isinstance(r.get("lost"), int))
        short = sum(max(0, r["messages"] - r["accepted"]) for r in rs)
        lost_cell = str(lost) + (f" (+{short} not accepted)" if short else "")
        accepted = med([r['accept_mps'] for r in rs])
        share = None if accepted is None or not alone else 100 * accepted / alone
        print(
            f"| {n} | {ok}/{len(rs)} | {fmt(accepted, '.0f')} | {fmt(med([r['e2e_mps'] for r in rs]), '.0f')}"
            f" | {fmt(share, '.0f')}{'' if share is None else ' %'} | {fmt(mib(med([r['peak_rss_kb'] for r in rs])), '.0f')} | {lost_cell} |"
        )
    print()

large = [r for r in rows if r.get("mode") == "large"]
if large:
    print(f"### One {large[0]['size'] / 1048576:.0f} MiB message (medians)\n")
    print("| server | runs ok | wall s | base RSS MiB | peak RSS MiB | peak above base MiB | delivered |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        rs = [r for r in large if r["name"] == n]
        if not rs:
            continue
        ok = sum(1 for r in rs if r["status"] == "ok")
        delivered = sum(r["delivered"] for r in rs if isinstance(r.get("delivered"), int))
        print(
            f"| {n} | {ok}/{len(rs)} | {fmt(med([r['wall_s'] for r in rs]), '.2f')} | {fmt(mib(med([r['base_rss_kb'] for r in rs])), '.0f')}"
            f" | {fmt(mib(med([r['peak_rss_kb'] for r in rs])), '.0f')}"
            f" | {fmt(mib(med([r['peak_rss_kb'] - r['base_rss_kb'] for r in rs])), '.0f')} | {delivered}/{len(rs)} |"
        )
    print()

bad = [r for r in rows if r["status"] != "ok"]
for r in bad:
    print(f"not ok: {r['name']} mode={r['mode']} status={r['status']} {r.get('note', '')}")
sys.exit(1 if bad or not rows else 0)
