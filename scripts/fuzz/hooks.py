"""Schemathesis checks of our own, loaded through SCHEMATHESIS_HOOKS by scripts/fuzz."""

import schemathesis
from hypothesis.internal import lambda_sources

# CPython 3.11 can fail to parse a large module when the parse starts deep in the stack
# ("SystemError: AST constructor recursion depth mismatch", fixed in later Pythons).
# hypothesis parses schemathesis's own source only to *describe* a lambda in a strategy's
# repr, and that failure ended a whole operation's coverage phase as a runtime error of the
# tool (CI, 2026-11-26: every generated case had passed). A description is not worth a
# failed run: fall back to the placeholder hypothesis itself uses when it cannot tell.
# hypothesis is pinned in scripts/fuzz/run, so this private function stays where it is.
_describe_lambda = lambda_sources._lambda_description


def _describe_lambda_or_placeholder(f, *args, **kwargs):
    try:
        return _describe_lambda(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _describe_lambda_or_placeholder


@schemathesis.check
def errors_are_problem_json(ctx, response, case):
    """Every 4xx/5xx answer is an RFC 9457 problem with a matching status."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(
            f"{response.status_code} answered with {content_type!r}, not application/problem+json"
        )
    body = response.json()
    if body.get("status") != response.status_code:
        raise AssertionError(f"problem status {body.get('status')!r} != {response.status_code}")
    for field in ("type", "title", "detail"):
        if not isinstance(body.get(field), str):
            raise AssertionError(f"problem lacks a string {field!r}")


@schemathesis.check
def every_response_has_a_request_id(ctx, response, case):
    if not response.headers.get("x-request-id"):
        raise AssertionError("response without X-Request-ID")
