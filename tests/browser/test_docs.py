"""`/docs` renders every operation of `/openapi.json` in a real browser, offline, with the
page's Content-Security-Policy refusing nothing (so the viewer needs no inline code and no
other host). Needs the API at $CART_API_URL (`tests/browser/run` starts one)."""

import json
import os
import unittest
import urllib.request

from harness import render

API = os.environ.get("CART_API_URL", "http://127.0.0.1:8080").rstrip("/")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def documented_operations() -> set[tuple[str, str]]:
    with urllib.request.urlopen(f"{API}/openapi.json", timeout=10) as answer:
        document = json.load(answer)
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


class DocsPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.page = render(f"{API}/docs")

    def test_every_documented_operation_is_listed(self):
        expected = documented_operations()
        self.assertGreater(len(expected), 10, "the document has the API's operations")
        shown = {
            (block["text"].strip().upper(), block_path)
            for block, block_path in self._operation_blocks()
        }
        missing = sorted(expected - shown)
        self.assertEqual(missing, [], f"operations not shown on /docs: {missing}")

    def test_the_policy_refused_nothing(self):
        self.assertEqual(self.page.blocked_by_csp(), [])

    def test_the_page_reports_no_error(self):
        errors = [line for line in self.page.console if "error" in line.lower()]
        self.assertEqual(errors, [])

    def _operation_blocks(self):
        """(method label, path) of each operation block Swagger UI drew."""
        methods = self.page.elements("span", "opblock-summary-method")
        paths = self.page.elements("span", "opblock-summary-path")
        self.assertEqual(len(methods), len(paths), "one method label per path label")
        return [(method, path.get("data-path", "")) for method, path in zip(methods, paths)]


if __name__ == "__main__":
    unittest.main()
