//! The OpenAPI document against what the API really answers: every error is documented as
//! `application/problem+json`, every route documents the errors its kind of route can give
//! through the shared response sets, and the bounds the API enforces are stated.

use cart_api::openapi::{PROBLEM, SharedError};
use serde_json::Value;

fn document() -> Value {
    serde_json::to_value(cart_api::openapi()).expect("the OpenAPI document")
}

/// Every operation as `("METHOD /path", path, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if let Some(operation) = item.get(method) {
                let label = format!("{} {path}", method.to_uppercase());
                found.push((label, path.clone(), operation));
            }
        }
    }
    assert!(
        found.len() > 50,
        "the document lists only {} operations",
        found.len()
    );
    found
}

/// A response, with a `$ref` to `#/components/responses/…` followed.
fn resolve<'a>(doc: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference
                .strip_prefix("#/components/responses/")
                .unwrap_or_else(|| panic!("{reference} is not a response component"));
            let component = &doc["components"]["responses"][name];
            assert!(component.is_object(), "{reference} points nowhere");
            component
        }
        None => response,
    }
}

fn shared(error: SharedError) -> String {
    format!("#/components/responses/{}", error.name())
}

/// OpenAPI requires a description on every response; a generator that validates the
/// document stops at the first one missing.
#[test]
fn every_response_has_a_description() {
    let doc = document();
    let mut bare = Vec::new();
    for (label, _, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().expect("responses") {
            let described = resolve(&doc, response)["description"]
                .as_str()
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                bare.push(format!("{label} {status}"));
            }
        }
    }
    assert!(
        bare.is_empty(),
        "responses without a description: {bare:#?}"
    );
}

#[test]
fn every_error_is_documented_as_problem_json_and_nothing_else_is() {
    let doc = document();
    let mut wrong = Vec::new();
    for (label, _, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().expect("responses") {
            let code: u16 = status.parse().expect("a numeric status");
            let content = resolve(&doc, response)["content"].as_object();
            let types: Vec<&String> = content.map(|c| c.keys().collect()).unwrap_or_default();
            if code >= 400 {
                let schema =
                    &content.and_then(|c| c.get(PROBLEM)).unwrap_or(&Value::Null)["schema"];
                if types != [PROBLEM] || schema["$ref"] != "#/components/schemas/Problem" {
                    wrong.push(format!("{label} {status}: {types:?}, schema {schema}"));
                }
            } else if types.iter().any(|t| *t == PROBLEM) {
                wrong.push(format!(
                    "{label} {status}: a success documented as a problem"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "error responses that are not problem+json: {wrong:#?}"
    );
}

/// What every route of a kind can answer, from what the document says the route is: under
/// `/api` (rate limited, unless a webhook), behind the bearer scheme, reading a JSON body,
/// paginated. A route that leaves one out, or writes its own instead of the shared component,
/// fails here; the route-specific errors (404, 409, …) are the route's own business.
#[test]
fn every_route_documents_the_shared_errors_of_its_kind() {
    let doc = document();
    let mut missing = Vec::new();
    for (label, path, operation) in operations(&doc) {
        let responses = &operation["responses"];
        let mut expect_shared = |error: SharedError| {
            if responses[error.status().to_string()]["$ref"] != shared(error).as_str() {
                missing.push(format!("{label}: {} ({})", error.status(), error.name()));
            }
        };
        if path.starts_with("/api/webhooks/") {
            for error in [
                SharedError::BadRequest,
                SharedError::BadSignature,
                SharedError::PayloadTooLarge,
                SharedError::Internal,
                SharedError::Unavailable,
            ] {
                expect_shared(error);
            }
            continue;
        }
        if !path.starts_with("/api/") {
            continue;
        }
        for error in [
            SharedError::BadRequest,
            SharedError::TooManyRequests,
            SharedError::Internal,
        ] {
            expect_shared(error);
        }
        let bearer = operation["security"]
            .as_array()
            .is_some_and(|schemes| schemes.iter().any(|s| s.get("bearer").is_some()));
        if bearer {
            expect_shared(SharedError::Unauthorized);
        }
        let json_body = operation["requestBody"]["content"]
            .get("application/json")
            .is_some();
        if json_body {
            expect_shared(SharedError::PayloadTooLarge);
            expect_shared(SharedError::UnsupportedMediaType);
        }
        let paginated = operation["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "limit"));
        // A route may say more about these two than the shared component does.
        for (status, needed) in [("422", json_body || paginated), ("503", true)] {
            if needed && responses.get(status).is_none() {
                missing.push(format!("{label}: {status}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes that do not document an error of their kind through a shared response set \
         (crate::openapi): {missing:#?}"
    );
}

#[test]
fn webhooks_are_not_rate_limited_and_document_no_429() {
    let doc = document();
    for (label, path, operation) in operations(&doc) {
        if path.starts_with("/api/webhooks/") {
            assert!(operation["responses"].get("429").is_none(), "{label}");
        }
    }
}

/// `limit` below 1 and a negative `offset` are refused (422), so the schema says so; a `limit`
/// above `PAGINATION_MAX_LIMIT` is clamped, not refused, so the schema states no maximum.
#[test]
fn pagination_states_what_is_refused_and_not_what_is_clamped() {
    let doc = document();
    let mut lists = 0;
    for (label, _, operation) in operations(&doc) {
        let Some(parameters) = operation["parameters"].as_array() else {
            continue;
        };
        let schema_of = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name && p["in"] == "query")
                .map(|p| &p["schema"])
        };
        let Some(limit) = schema_of("limit") else {
            continue;
        };
        lists += 1;
        assert_eq!(limit["type"], "integer", "{label}: limit {limit}");
        assert_eq!(limit["minimum"], 1, "{label}: limit {limit}");
        assert!(limit.get("maximum").is_none(), "{label}: limit {limit}");
        let offset = schema_of("offset").unwrap_or_else(|| panic!("{label}: no offset"));
        assert_eq!(offset["type"], "integer", "{label}: offset {offset}");
        assert_eq!(offset["minimum"], 0, "{label}: offset {offset}");
    }
    assert!(lists >= 8, "only {lists} paginated routes found");
}

/// Every pattern that speaks of whitespace names exactly what `str::trim` removes: with `\s`
/// instead (another set), the fuzzer finds values the document and the API disagree on.
#[test]
fn patterns_name_the_whitespace_trim_removes() {
    fn patterns<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match (key.as_str(), child) {
                        ("pattern", Value::String(pattern)) => found.push(pattern),
                        _ => patterns(child, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| patterns(item, found)),
            _ => {}
        }
    }
    let doc = document();
    let mut found = Vec::new();
    patterns(&doc, &mut found);
    let whitespace = cart_core::validation::WHITESPACE_CLASS;
    let mut not_blank = 0;
    for pattern in found {
        assert!(
            !pattern.contains(r"\s") && !pattern.contains(r"\S"),
            "{pattern}"
        );
        if pattern.contains(r"\u3000") {
            assert!(pattern.contains(whitespace), "{pattern}");
            not_blank += 1;
        }
    }
    assert!(not_blank >= 10, "only {not_blank} not-blank patterns found");
}
