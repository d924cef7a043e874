"""The operator board (`/board` on the worker) in a real browser, used as an operator would:
sign in with the token, look an order up, find its failed job, retry it and watch it succeed;
and, without the session cookie, every page and every action refused. Needs the API at
$CART_API_URL and a worker serving the board at $CART_BOARD_URL with $BOARD_TOKEN and the
test job kinds on (`tests/browser/run` starts both).

The failing job is a `test_record` job (worker/src/jobs/testing.rs) that serves a real order
placed through the API: it fails while `worker_test_failures` holds a count for its key, so it
exhausts its three attempts, and then succeeds when retried, with no provider to fake and no
timing to guess. What is under test is the operator's path through the board; the job kinds
themselves have their own tests.
"""

import json
import os
import random
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

from harness import Browser

API = os.environ.get("CART_API_URL", "http://127.0.0.1:8080").rstrip("/")
BOARD = os.environ.get("CART_BOARD_URL", "http://127.0.0.1:9090/board").rstrip("/")
TOKEN = os.environ.get("BOARD_TOKEN", "")
WORKER = os.environ.get("CART_WORKER_BIN", "cart-worker")


def sql(query: str) -> list[list[str]]:
    out = subprocess.run(
        ["psql", os.environ["DATABASE_URL"], "-v", "ON_ERROR_STOP=1", "-Atc", query],
        check=True, capture_output=True, text=True,
    )
    return [line.split("|") for line in out.stdout.splitlines() if line]


def api(method: str, path: str, body=None, token=None):
    request = urllib.request.Request(
        f"{API}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=20) as answer:
        return json.load(answer)


def cpf() -> str:
    digits = [random.randint(0, 9) for _ in range(9)]
    for n in (10, 11):
        total = sum(d * w for d, w in zip(digits, range(n, 1, -1)))
        digits.append(0 if total % 11 < 2 else 11 - total % 11)
    return "".join(map(str, digits))


def place_order() -> tuple[str, str]:
    """A real order of the demo catalog, through the API: (id, number)."""
    account = api("POST", "/api/auth/register", {
        "name": "Ana Operadora", "email": f"ana-{uuid.uuid4().hex[:10]}@example.com",
        "password": "uma-senha-boa-123", "cpf": cpf(),
    })
    token = account["token"]
    address = api("POST", "/api/users/me/addresses", {
        "label": "Casa", "recipient": "Ana", "cep": "01310-100", "street": "Avenida Paulista",
        "number": "1000", "complement": "", "district": "Bela Vista", "city": "São Paulo",
        "state": "SP",
    }, token)
    product = api("GET", "/api/products")["items"][0]["id"]
    api("POST", "/api/cart/items", {"product_id": product, "quantity": 1}, token)
    quote = api("POST", "/api/shipping/calculate",
                {"cep_destino": "01310-100", "items": [{"product_id": product, "quantity": 1}]})
    order = api("POST", "/api/orders", {
        "address_id": address["id"], "shipping_service": quote["options"][0]["service"],
    }, token)
    return order["id"], order["number"]


def failing_job(order_id: str) -> str:
    """A job of the order that fails its three attempts, then succeeds when retried."""
    key = f"board-{uuid.uuid4().hex[:12]}"
    sql(f"INSERT INTO worker_test_failures (key, remaining) VALUES ('{key}', 3)")
    enqueued = subprocess.run(
        [WORKER, "jobs", "--actor", "browser-test", "enqueue", "test_record",
         "--payload", json.dumps({"key": key, "order_id": order_id})],
        check=True, capture_output=True, text=True, env=dict(os.environ, WORKER_TEST_JOBS="true"),
    )
    job_id = enqueued.stdout.split()[-1]
    state_is(job_id, "failed", 60)
    return job_id


def state_of(job_id: str) -> str | None:
    """The job's state as the operator CLI tells it (`jobs show --json`)."""
    shown = subprocess.run([WORKER, "jobs", "show", job_id, "--json"], capture_output=True, text=True)
    return json.loads(shown.stdout)["state"] if shown.returncode == 0 else None


def state_is(job_id: str, wanted: str, seconds: float):
    deadline = time.monotonic() + seconds
    while state_of(job_id) != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {state_of(job_id)}, not {wanted}")
        time.sleep(0.2)


class Board(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not TOKEN:
            raise unittest.SkipTest("BOARD_TOKEN is not set: tests/browser/run sets it")
        sql("""CREATE TABLE IF NOT EXISTS worker_test_runs (
                   key text NOT NULL, job_id text NOT NULL, attempt integer NOT NULL,
                   request_id text, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT now());
               CREATE TABLE IF NOT EXISTS worker_test_failures (
                   key text PRIMARY KEY, remaining integer NOT NULL)""")
        cls.order_id, cls.order_number = place_order()
        cls.job_id = failing_job(cls.order_id)
        cls.untouched_job_id = failing_job(cls.order_id)

    def test_an_operator_finds_the_failed_job_of_an_order_retries_it_and_sees_it_succeed(self):
        with Browser(window="412,915") as browser:  # a phone's screen
            tab = browser.open(f"{BOARD}")
            self.assertEqual(tab.status, 401)
            tab.type_into("#token", TOKEN)
            tab.click("form.sign-in button[type=submit]")
            self.assertEqual(tab.status, 200, tab.text())
            self.assertEqual(tab.text("h1"), "Overview")
            self.assertTrue(tab.exists("svg.chart"), "the last hour's chart")
            cookie = next(c for c in tab.cookies() if c["name"] == "cart_board")
            self.assertTrue(cookie["secure"] and cookie["httpOnly"])
            self.assertEqual(cookie["sameSite"], "Strict")

            tab.type_into("#q", self.order_number)
            tab.click("form.search button[type=submit]")
            self.assertEqual(tab.status, 200, tab.text())
            self.assertIn(self.order_number, tab.text("main"))
            row = f"tr[data-job='{self.job_id}']"
            self.assertIn("failed", tab.text(row))
            tab.click(f"{row} a.job-link")
            self.assertEqual(tab.text("#job-state"), "failed")
            self.assertIn("asked to fail", tab.text("main"))

            tab.click("#retry")
            self.assertIn("Retried 1 job(s)", tab.text(".notice"))
            deadline = time.monotonic() + 30
            while tab.text("#job-state") != "done":
                self.assertLess(time.monotonic(), deadline, f"the job is {tab.text('#job-state')}")
                time.sleep(0.5)
                tab.goto(tab.url)
            self.assertEqual(tab.blocked_by_csp(), [])

        self.assertEqual(state_of(self.job_id), "done")
        self.assertEqual(
            sql(f"SELECT actor, action FROM operator_audit WHERE '{self.job_id}' = ANY(job_ids) "
                "AND action = 'jobs.retry'"),
            [["board", "jobs.retry"]],
        )

    def test_without_the_cookie_every_page_and_action_is_refused(self):
        job = self.untouched_job_id
        pages = ["", "/failed", f"/jobs/{job}", f"/confirm?action=discard&id={job}",
                 f"/search?q={self.order_number}", f"/orders/{self.order_id}"]
        with Browser() as browser:
            tab = browser.open(f"{BOARD}/failed")
            for page in pages:
                tab.goto(f"{BOARD}{page}")
                self.assertEqual(tab.status, 401, page)
                self.assertTrue(tab.exists("#token"), f"{page} asks to sign in")
                self.assertFalse(tab.exists("table"), f"{page} shows nothing of the queue")
                self.assertNotIn(job, tab.text("main"), page)
            self.assertEqual(tab.cookies(), [])
        for action, form in [
            ("/jobs/retry", {"scope": "job", "id": job, "csrf": "x"}),
            ("/jobs/retry", {"scope": "all-failed", "csrf": "x"}),
            ("/jobs/discard", {"scope": "job", "id": job, "csrf": "x"}),
            ("/jobs/discard", {"scope": "all-failed", "csrf": "x"}),
        ]:
            for cookie in (None, "cart_board=v1.1.00"):
                request = urllib.request.Request(
                    f"{BOARD}{action}", method="POST",
                    data=urllib.parse.urlencode(form).encode(),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                if cookie:
                    request.add_header("cookie", cookie)
                with self.assertRaises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(request, timeout=10)
                self.assertEqual(refused.exception.code, 401, action)
        self.assertEqual(state_of(job), "failed")
        self.assertEqual(sql(f"SELECT count(*) FROM operator_audit WHERE '{job}' = ANY(job_ids) "
                             "AND actor = 'board'"), [["0"]])


if __name__ == "__main__":
    unittest.main()
