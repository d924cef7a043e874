"""Schemathesis checks of our own, loaded through SCHEMATHESIS_HOOKS by scripts/fuzz."""

import schemathesis


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
