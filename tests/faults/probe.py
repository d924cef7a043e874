#!/usr/bin/env python3
"""Probes for the fault tests, tests/faults/run (standard library only). Not a load generator:
wrk and checkout-load make the load; these watch what a client sees while a fault happens.

    probe.py watch URL SECONDS OUT      poll URL/health and URL/ready every 50 ms (3 s
                                       timeout each) and write one JSON line per answer
    probe.py summary OUT               summarise a watch file as JSON
    probe.py inflight URL N BODY FLAG  send N POSTs of BODY on N connections, touch
                                       FLAG once all are sent, then print each answer's
                                       status (or the error) as a JSON list
"""

import http.client
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def get(url, timeout):
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            status = res.status
    except urllib.error.HTTPError as e:
        status = e.code
    except Exception as e:  # noqa: BLE001 - every failure is an observation here
        status = f"error: {type(e).__name__}"
    return status, (time.monotonic() - started) * 1000.0


def watch(base, seconds, out):
    deadline = time.monotonic() + float(seconds)
    with open(out, "w", encoding="utf-8") as f:
        while time.monotonic() < deadline:
            for probe in ("health", "ready"):
                status, ms = get(f"{base}/{probe}", 3)
                f.write(json.dumps({"t": time.time(), "probe": probe, "status": status, "ms": round(ms, 1)}) + "\n")
                f.flush()
            time.sleep(0.05)


def summary(out):
    samples = [json.loads(line) for line in open(out, encoding="utf-8") if line.strip()]
    result = {}
    for probe in ("health", "ready"):
        rows = [s for s in samples if s["probe"] == probe]
        statuses = {}
        for s in rows:
            statuses[str(s["status"])] = statuses.get(str(s["status"]), 0) + 1
        # The order in which the answers changed, e.g. ["200", "503", "200"].
        sequence = []
        for s in rows:
            if not sequence or sequence[-1] != str(s["status"]):
                sequence.append(str(s["status"]))
        result[probe] = {
            "samples": len(rows),
            "statuses": statuses,
            "sequence": sequence,
            "max_ms": max((s["ms"] for s in rows), default=0),
        }
    print(json.dumps(result))


def inflight(url, n, body, sent_flag):
    """Sends every request first, then touches SENT_FLAG, then reads the answers, so that
    the caller can signal the server knowing that all of them are in flight."""
    parsed = urllib.parse.urlsplit(url)
    conns, results = [], []
    for _ in range(int(n)):
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        conn.request("POST", parsed.path, body=body.encode(), headers={"content-type": "application/json"})
        conns.append((conn, time.monotonic()))
    open(sent_flag, "w").close()
    for conn, started in conns:
        try:
            status = conn.getresponse().status
        except Exception as e:  # noqa: BLE001
            status = f"error: {type(e).__name__}: {e}"
        results.append({"status": status, "ms": round((time.monotonic() - started) * 1000.0, 1)})
        conn.close()
    print(json.dumps(results))


def main(argv):
    if argv[:1] == ["watch"] and len(argv) == 4:
        watch(argv[1], argv[2], argv[3])
    elif argv[:1] == ["summary"] and len(argv) == 2:
        summary(argv[1])
    elif argv[:1] == ["inflight"] and len(argv) == 5:
        inflight(argv[1], argv[2], argv[3], argv[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
