#!/usr/bin/env python3
"""Helpers for bench/run: reading wrk and pgbench output, and rendering the results table.

    tools.py wrk FILE               -> one JSON line: rps, p50_ms, p99_ms, requests, non2xx, errors
    tools.py pgbench FILE           -> one JSON line: tps
    tools.py report RESULTS [--update BENCHMARKS.md] [--command "bench/run"]

RESULTS is the file bench/run writes: one `key value` per line (a value is a number or a word).
"""

import json
import re
import sys
from datetime import datetime, timezone

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def duration_ms(text):
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * UNITS_MS[match.group(2)]


def parse_wrk(text):
    result = {"rps": 0.0, "p50_ms": None, "p99_ms": None, "requests": 0, "non2xx": 0, "errors": 0}
    if m := re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", text, re.M):
        result["max_ms"] = duration_ms(m.group(1))
    if m := re.search(r"Requests/sec:\s+([0-9.]+)", text):
        result["rps"] = float(m.group(1))
    if m := re.search(r"([0-9]+) requests in ([0-9.]+\w+)", text):
        result["requests"] = int(m.group(1))
        result["seconds"] = duration_ms(m.group(2)) / 1000.0
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}(?:\.000)?%\s+([0-9.]+\w+)", text, re.M):
            result[key] = duration_ms(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", text):
        result["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        result["errors"] = sum(int(g) for g in m.groups())
    # Only answers the server got right count as served.
    ok = max(result["requests"] - result["non2xx"], 0)
    result["ok_rps"] = ok / result["seconds"] if result.get("seconds") else 0.0
    return result


def parse_pgbench(text):
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    return {"tps": float(m.group(1)) if m else 0.0}


def load_results(path):
    results = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or " " not in line:
                continue
            key, value = line.split(" ", 1)
            if key.startswith(("machine.", "run.")):
                results[key] = value
                continue
            try:
                results[key] = float(value)
            except ValueError:
                results[key] = value
    return results


def fmt(value, unit=""):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text}{unit}"


class Table:
    def __init__(self, results):
        self.r = results
        self.rows = []

    def get(self, key):
        return self.r.get(key)

    def ratio(self, area, what, value_key, base_key, unit, goal=None, higher_is_better=True, note=""):
        value, base = self.get(value_key), self.get(base_key)
        if value is None or base is None or isinstance(value, str) or isinstance(base, str):
            reason = self.get(value_key.split(".")[0] + ".skipped") or "not measured"
            self.rows.append((area, what, "—", "—", "—", goal_text(goal, higher_is_better), str(reason)))
            return
        ratio = value / base if base else 0.0
        verdict = ""
        if goal is not None:
            met = ratio >= goal if higher_is_better else ratio <= goal
            verdict = "met" if met else "**missed**"
        self.rows.append(
            (area, what, fmt(value, unit), fmt(base, unit), f"{ratio:.2f}", goal_text(goal, higher_is_better),
             " ".join(x for x in (verdict, note) if x))
        )

    def absolute(self, area, what, key, unit, goal=None, check=None, note=""):
        value = self.get(key)
        if value is None:
            reason = self.get(key.split(".")[0] + ".skipped") or "not measured"
            self.rows.append((area, what, "—", "", "", goal or "", str(reason)))
            return
        verdict = ""
        if check is not None and not isinstance(value, str):
            verdict = "met" if check(value) else "**missed**"
        self.rows.append((area, what, fmt(value, unit), "", "", goal or "", " ".join(x for x in (verdict, note) if x)))

    def markdown(self):
        head = ("area", "measure", "cart", "baseline", "ratio", "goal", "")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            lines.append("| " + " | ".join(row) + " |")
        return "\n".join(lines)


def goal_text(goal, higher_is_better):
    if goal is None:
        return ""
    return f"≥ {goal}" if higher_is_better else f"≤ {goal}"


def build_table(r):
    t = Table(r)
    for scale in ("small", "big"):
        n = r.get(f"http.{scale}.products")
        label = f"reads, {fmt(n)} products" if n else f"reads ({scale})"
        for name, what in (("list", "catalog list (cached)"), ("detail", "product detail"), ("search", "search")):
            t.ratio(label, f"{what}: req/s vs HTTP ceiling", f"http.{scale}.{name}.ok_rps",
                    f"http.{scale}.ceiling.rps", "/s", goal=0.5 if name == "list" else None)
            t.ratio(label, f"{what}: p99 vs ceiling p99", f"http.{scale}.{name}.p99_ms",
                    f"http.{scale}.ceiling.p99_ms", " ms", higher_is_better=False)
    t.absolute("database", "pgbench -S (select-only), 32 clients", "db.pgbench_select.tps", " tps")
    for case, what in (("spread", "32 buyers over 100 products"), ("hot", "32 buyers on one product")):
        t.ratio("checkout", f"{what}: API vs raw SQL", f"checkout.{case}.api_rps", f"checkout.{case}.ceiling_rps",
                "/s", goal=0.5)
        t.absolute("checkout", f"{what}: API p99", f"checkout.{case}.api_p99_ms", " ms")
        t.absolute("checkout", f"{what}: failed checkouts", f"checkout.{case}.api_failed", "")
    t.ratio("queue", "no-op jobs/s: worker vs raw SKIP LOCKED loop, same batch", "queue.worker_rps",
            "queue.ceiling_rps", "/s", goal=0.8)
    t.ratio("queue", "no-op jobs/s: worker vs raw loop claiming one at a time", "queue.worker_rps",
            "queue.ceiling_one_rps", "/s")
    t.absolute("queue", "enqueue → start p50 (LISTEN/NOTIFY)", "queue.latency_p50_ms", " ms", goal="< 5 ms",
               check=lambda v: v < 5)
    t.absolute("queue", "enqueue → start p99", "queue.latency_p99_ms", " ms", goal="< 20 ms",
               check=lambda v: v < 20)
    for workers in (1, 2, 4):
        t.ratio("queue scale", f"{workers} worker process(es): jobs/s vs 1 process", f"queue.scale.{workers}.rps",
                "queue.scale.1.rps", "/s")
    t.absolute("queue scale", "jobs that ran more than once (all runs)", "queue.scale.duplicates", "",
               goal="0", check=lambda v: v == 0)
    n = r.get("operators.finished_jobs")
    label = f"operators, {fmt(n)} finished jobs" if n else "operators"
    for key, what in (("order", "jobs list --order (through payments, webhooks)"),
                      ("payment", "jobs list --payment"),
                      ("search", "jobs list --search TEXT (reads payloads)")):
        t.ratio(label, f"{what}: time vs jobs show ID", f"operators.{key}_ms", "operators.show_ms", " ms",
                higher_is_better=False)
    t.ratio("login flood", "64 concurrent logins: logins/s vs raw Argon2id", "login.ok_rps", "login.argon2_rps", "/s")
    t.absolute("login flood", "answered 503 (hashing queue full)", "login.non2xx", "")
    t.absolute("login flood", "API peak RSS (VmHWM)", "login.api_vmhwm_mib", " MiB", goal="< 512 MiB",
               check=lambda v: v < 512)
    return t


def machine_text(r):
    return (
        f"{r.get('machine.nproc', '?')} cores (nproc), {r.get('machine.mem_gib', '?')} GiB memory, "
        f"PostgreSQL {r.get('machine.pg_version', '?')}, Linux {r.get('machine.kernel', '?')}"
    )


def report(path, update=None, command="bench/run"):
    r = load_results(path)
    table = build_table(r)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"Run `{command}` on {when}, commit {r.get('run.commit', '?')}, mode {r.get('run.mode', '?')}.\n"
        f"Machine: {machine_text(r)}.\n"
    )
    text = header + "\n" + table.markdown() + "\n"
    print(text)
    if update:
        with open(update, encoding="utf-8") as f:
            doc = f.read()
        start, end = "<!-- bench:results -->", "<!-- /bench:results -->"
        if start in doc and end in doc:
            before = doc.split(start)[0]
            after = doc.split(end, 1)[1]
            doc = f"{before}{start}\n{text}{end}{after}"
            with open(update, "w", encoding="utf-8") as f:
                f.write(doc)
            print(f"updated {update}")
        else:
            print(f"{update} lacks the {start} markers; not updated", file=sys.stderr)


def main(argv):
    if len(argv) >= 2 and argv[0] == "wrk":
        with open(argv[1], encoding="utf-8") as f:
            print(json.dumps(parse_wrk(f.read())))
    elif len(argv) >= 2 and argv[0] == "pgbench":
        with open(argv[1], encoding="utf-8") as f:
            print(json.dumps(parse_pgbench(f.read())))
    elif len(argv) >= 2 and argv[0] == "report":
        update = argv[argv.index("--update") + 1] if "--update" in argv else None
        command = argv[argv.index("--command") + 1] if "--command" in argv else "bench/run"
        report(argv[1], update, command)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
