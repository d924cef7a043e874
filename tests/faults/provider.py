#!/usr/bin/env python3
"""Payment-provider faults for the fault tests, tests/faults/run (standard library only).

Runs a stand-in for the ProPay gateway (the same routes and answer shapes as its real API,
see core/src/payments/propay.rs) whose behaviour the scenario switches while the real API
and worker run against it:

  hang       accepts the connection and answers nothing for 60 s
  500        answers 500 with an error body
  malformed  answers 201 with a body that is not JSON
  ok         answers 201 with a charge

The API and the worker must already run with PIX_PROVIDER=propay, PROPAY_URL pointing at
this server, PROPAY_TIMEOUT=1s, WORKER_RETRY_BASE_DELAY=2s, CIRCUIT_BREAKER_THRESHOLD=3 and
a short cool-down.

    provider.py API_URL MOCK_PORT PRODUCT_ID

Prints one PASS/FAIL line per check (tests/faults/run's format) and exits with the number of
failures. Queries the database with psql through $DATABASE_URL.
"""

import http.server
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

# Must match what tests/faults/run starts the API and the worker with.
PROPAY_TIMEOUT_S = 1.0
RETRY_BASE_S = 2.0


class Mock:
    mode = "ok"
    calls = []  # (mode, idempotency key)
    lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with Mock.lock:
            mode = Mock.mode
            Mock.calls.append((mode, self.headers.get("idempotency-key")))
        if mode == "hang":
            time.sleep(60)
            return
        if mode == "500":
            self.answer(500, json.dumps({"error": "internal", "message": "gateway on fire"}))
        elif mode == "malformed":
            self.answer(201, "<html>upstream proxy error</html>")
        else:
            txid = "PROPAY" + uuid.UUID(body["payment_id"]).hex[:26]
            self.answer(
                201,
                json.dumps(
                    {
                        "txid": txid,
                        "br_code": "00020101021226760014br.gov.bcb.pix2554pix.example.com/qr/v2/"
                        "9d36b84fc70b478fb95c12729b90ca255204000053039865802BR5913Fulano de Tal"
                        "6008BRASILIA62070503***63047EC0",
                        "qr_code_url": "",
                        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1800)),
                    }
                ),
            )

    def answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (its timeout): that is the point of the test


def request(method, url, body=None, token=None, timeout=15):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            status, headers, text = res.status, dict(res.headers), res.read().decode()
    except urllib.error.HTTPError as e:
        status, headers, text = e.code, dict(e.headers), e.read().decode()
    elapsed = time.monotonic() - started
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return status, headers, parsed, elapsed


def sql(query):
    out = subprocess.run(
        ["psql", os.environ["DATABASE_URL"], "-Atc", query], check=True, capture_output=True, text=True
    )
    return [line.split("|") for line in out.stdout.splitlines() if line]


def cpf():
    digits = [random.randint(0, 9) for _ in range(9)]
    for n in (10, 11):
        total = sum(d * w for d, w in zip(digits, range(n, 1, -1)))
        digits.append(0 if total % 11 < 2 else 11 - total % 11)
    return "".join(map(str, digits))


def order(api, product):
    n = random.randint(1, 10**9)
    status, _, body, _ = request(
        "POST",
        f"{api}/api/auth/register",
        {"name": "Pagador do Caos", "email": f"pagador-{n}@chaos.example", "password": "senha-do-caos-123", "cpf": cpf()},
    )
    assert status == 201, (status, body)
    token = body["token"]
    status, _, address, _ = request(
        "POST",
        f"{api}/api/users/me/addresses",
        {"label": "Casa", "recipient": "Pagador", "cep": "01310-100", "street": "Avenida Paulista",
         "number": "1000", "complement": "", "district": "Bela Vista", "city": "São Paulo", "state": "SP"},
        token,
    )
    assert status == 201, (status, address)
    status, _, body, _ = request("POST", f"{api}/api/cart/items", {"product_id": product, "quantity": 1}, token)
    assert status == 200, (status, body)
    status, _, quote, _ = request(
        "POST", f"{api}/api/shipping/calculate",
        {"cep_destino": "01310-100", "items": [{"product_id": product, "quantity": 1}]},
    )
    assert status == 200, (status, quote)
    status, _, placed, _ = request(
        "POST", f"{api}/api/orders",
        {"address_id": address["id"], "shipping_service": quote["options"][0]["service"]}, token,
    )
    assert status == 201, (status, placed)
    return placed["id"], token


def failures(payment_id):
    """(attempt, error, retry_at - failed_at in seconds) of the payment's initiation job."""
    return sql(
        "SELECT f.attempt, replace(f.error, '|', '/'), "
        "coalesce(extract(epoch FROM f.retry_at - f.failed_at), -1) "
        "FROM job_failures f JOIN apalis.jobs j ON j.id = f.job_id "
        f"WHERE j.idempotency_key = 'initiate:{payment_id}' ORDER BY f.failed_at"
    )


def at_least(n, rows):
    return rows if len(rows) >= n else None


def wait_for(what, seconds, probe):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


class Checks:
    def __init__(self):
        self.failed = 0

    def __call__(self, name, ok, detail):
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}", flush=True)
        self.failed += 0 if ok else 1


def main(api, port, product):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    check = Checks()

    # 1. The provider hangs: the API answers at once (202: initiation continues in the
    # worker), and the worker's call gives up after PROPAY_TIMEOUT.
    Mock.mode = "hang"
    order_a, token_a = order(api, product)
    paid_at = time.monotonic()
    status, _, body, elapsed = request("POST", f"{api}/api/orders/{order_a}/pay", {"method": "pix"}, token_a)
    payment_a = (body or {}).get("payment_id") or (body or {}).get("id")
    check("hung-provider-pay-answers", status == 202 and elapsed < 5, f"pay answered {status} in {elapsed:.1f} s")
    first = wait_for("a first failure", 30, lambda: failures(payment_a))
    took = time.monotonic() - paid_at
    check("hung-provider-times-out", "timed out" in first[0][1] and took < PROPAY_TIMEOUT_S + 5,
          f"first attempt failed {took:.1f} s after pay (PROPAY_TIMEOUT {PROPAY_TIMEOUT_S:.0f} s): {first[0][1][:80]}")

    # 2. 500s, then malformed answers: retried, each later than the one before.
    Mock.mode = "500"
    wait_for("a failure on a 500", 30, lambda: len(failures(payment_a)) >= 2)
    Mock.mode = "malformed"
    history = wait_for("a failure on a malformed answer", 30, lambda: at_least(3, failures(payment_a)))
    errors = [row[1] for row in history[:3]]
    check("500-and-malformed-are-retried", "500" in errors[1] and "malformed" in errors[2],
          f"errors: {[e[:50] for e in errors]}")
    # Equal jitter: the delay after attempt n is within [base * 2^(n-1) / 2, base * 2^(n-1)].
    gaps = [float(row[2]) for row in history[:3]]
    bands = [(RETRY_BASE_S * 2**n / 2 - 0.05, RETRY_BASE_S * 2**n + 0.05) for n in range(3)]
    check("retries-back-off", all(lo <= g <= hi for g, (lo, hi) in zip(gaps, bands)),
          f"retry delays {[round(g, 2) for g in gaps]} s (base {RETRY_BASE_S} s, doubling)")

    # 3. Three failures opened the breaker: a new payment is refused fast, nothing recorded.
    state = wait_for("the breaker open", 10, lambda: (r := sql("SELECT state FROM circuit_breakers WHERE provider = 'propay'")) and r[0][0] == "open" and r)
    check("breaker-opens", state[0][0] == "open", f"propay breaker {state[0][0]}")
    order_b, token_b = order(api, product)
    status, headers, body, elapsed = request("POST", f"{api}/api/orders/{order_b}/pay", {"method": "pix"}, token_b)
    retry_after = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    recorded = sql(f"SELECT count(*) FROM payments WHERE order_id = '{order_b}'")[0][0]
    check("api-answers-503-fast-while-open", status == 503 and retry_after and elapsed < 1.0 and recorded == "0",
          f"pay answered {status} (Retry-After {retry_after}) in {elapsed * 1000:.0f} ms, {recorded} payments recorded")
    calls_while_open = len(Mock.calls)

    # 4. The provider recovers: after the cool-down the breaker lets a probe through, the
    # stalled payment is initiated (its open-circuit refusals did not use up its attempts),
    # and new payments go through.
    Mock.mode = "ok"
    started = time.monotonic()
    try:
        wait_for("payment A initiated", 60, lambda: sql(f"SELECT status FROM payments WHERE id = '{payment_a}'")[0][0] == "pending")
        recovered = True
    except TimeoutError:
        recovered = False
    status_a = sql(f"SELECT status FROM payments WHERE id = '{payment_a}'")[0][0]
    check("stalled-payment-recovers", recovered, f"payment A {status_a} {time.monotonic() - started:.1f} s after the provider came back")
    keys = {key for _, key in Mock.calls}
    check("retries-reuse-the-idempotency-key", keys == {payment_a},
          f"{len(Mock.calls)} calls ({calls_while_open} before recovery), idempotency keys {sorted(keys)}")
    status, _, body, _ = request("POST", f"{api}/api/orders/{order_b}/pay", {"method": "pix"}, token_b)
    payment_b = (body or {}).get("payment_id") or (body or {}).get("id")
    try:
        wait_for("payment B initiated", 30, lambda: sql(f"SELECT status FROM payments WHERE id = '{payment_b}'")[0][0] == "pending")
        ok = True
    except (TimeoutError, IndexError):
        ok = False
    breaker = sql("SELECT state FROM circuit_breakers WHERE provider = 'propay'")[0][0]
    check("new-payments-flow-after-recovery", ok and breaker == "closed", f"pay answered {status}; breaker {breaker}")
    server.shutdown()
    return check.failed


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
