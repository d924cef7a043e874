//! The OpenAPI document's frame: its info, the bearer scheme, and the error answers the
//! routes share.
//!
//! Every error is `application/problem+json` ([`crate::error::Problem`]). Which errors a
//! route can answer follows from its kind: who may call it and whether it reads a JSON body.
//! Each kind is one response set below; a route lists its success, its set, and only the
//! errors of its own logic (404, 409, …), written with [`PROBLEM`] as content type:
//!
//! ```text
//! responses(
//!     (status = 200, body = Product),
//!     AdminWithBody,
//!     (status = 409, description = "SKU taken", body = Problem, content_type = PROBLEM),
//! )
//! ```

use std::collections::BTreeMap;

use utoipa::{
    IntoResponses, OpenApi,
    openapi::{
        ContentBuilder, Ref, RefOr, ResponseBuilder,
        header::HeaderBuilder,
        response::Response,
        schema::{ObjectBuilder, Type},
    },
};

use crate::error::Problem;

/// The content type of every error answer.
pub const PROBLEM: &str = "application/problem+json";

#[derive(OpenApi)]
#[openapi(
    info(title = "cart", description = "E-commerce backend for Brazilian stores"),
    components(schemas(Problem)),
    modifiers(&BearerAuth, &SharedErrors)
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// An error answer every route of some kind can give, as a reusable response component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedError {
    BadRequest,
    Unauthorized,
    BadSignature,
    Forbidden,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    TooManyRequests,
    Internal,
    Unavailable,
}

impl SharedError {
    pub const ALL: [SharedError; 10] = [
        SharedError::BadRequest,
        SharedError::Unauthorized,
        SharedError::BadSignature,
        SharedError::Forbidden,
        SharedError::PayloadTooLarge,
        SharedError::UnsupportedMediaType,
        SharedError::Unprocessable,
        SharedError::TooManyRequests,
        SharedError::Internal,
        SharedError::Unavailable,
    ];

    pub fn status(self) -> u16 {
        match self {
            SharedError::BadRequest => 400,
            SharedError::Unauthorized | SharedError::BadSignature => 401,
            SharedError::Forbidden => 403,
            SharedError::PayloadTooLarge => 413,
            SharedError::UnsupportedMediaType => 415,
            SharedError::Unprocessable => 422,
            SharedError::TooManyRequests => 429,
            SharedError::Internal => 500,
            SharedError::Unavailable => 503,
        }
    }

    /// The component's name under `#/components/responses/`.
    pub fn name(self) -> &'static str {
        match self {
            SharedError::BadRequest => "BadRequest",
            SharedError::Unauthorized => "Unauthorized",
            SharedError::BadSignature => "BadSignature",
            SharedError::Forbidden => "Forbidden",
            SharedError::PayloadTooLarge => "PayloadTooLarge",
            SharedError::UnsupportedMediaType => "UnsupportedMediaType",
            SharedError::Unprocessable => "Unprocessable",
            SharedError::TooManyRequests => "TooManyRequests",
            SharedError::Internal => "Internal",
            SharedError::Unavailable => "Unavailable",
        }
    }

    fn description(self) -> &'static str {
        match self {
            SharedError::BadRequest => {
                "a malformed request: JSON that does not parse or has the wrong types, a bad \
                 query parameter or header, a path id that is not a UUID"
            }
            SharedError::Unauthorized => "missing, invalid or expired bearer token",
            SharedError::BadSignature => "the provider's signature is missing, invalid or stale",
            SharedError::Forbidden => "authenticated, but not allowed to do this",
            SharedError::PayloadTooLarge => "the body is larger than `BODY_LIMIT_BYTES`",
            SharedError::UnsupportedMediaType => "the body is not `application/json`",
            SharedError::Unprocessable => {
                "well-formed but invalid values; `errors` names each field"
            }
            SharedError::TooManyRequests => "rate limited; retry after `Retry-After`",
            SharedError::Internal => "an unexpected error; the cause is logged, not sent",
            SharedError::Unavailable => {
                "the server is saturated, a dependency is unavailable, or the request took too \
                 long; retry after `Retry-After` when it is given"
            }
        }
    }

    fn headers(self) -> &'static [(&'static str, Type, &'static str)] {
        match self {
            SharedError::Unauthorized => &[("WWW-Authenticate", Type::String, "`Bearer`")],
            SharedError::TooManyRequests | SharedError::Unavailable => &[(
                "Retry-After",
                Type::Integer,
                "seconds to wait before trying again",
            )],
            _ => &[],
        }
    }

    fn response(self) -> Response {
        self.headers()
            .iter()
            .fold(
                problem_response(self.description()),
                |response, (name, kind, description)| {
                    response.header(
                        *name,
                        HeaderBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(kind.clone())))
                            .description(Some(*description))
                            .build(),
                    )
                },
            )
            .build()
    }

    fn reference(self) -> RefOr<Response> {
        RefOr::Ref(Ref::from_response_name(self.name()))
    }
}

fn problem_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

/// Adds every [`SharedError`] to `components.responses`.
struct SharedErrors;

impl utoipa::Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for error in SharedError::ALL {
            components
                .responses
                .insert(error.name().to_owned(), RefOr::T(error.response()));
        }
    }
}

/// Gives every response the document left without a description its status's reason phrase
/// (`OK`, `Created`, …): OpenAPI requires one, and client generators that validate the
/// document refuse it otherwise. Runs on the finished document, routes included.
pub(crate) fn describe_every_response(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = status
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                        .and_then(|code| code.canonical_reason())
                        .unwrap_or("the answer")
                        .to_owned();
                }
            }
        }
    }
}

/// Every route under `/api` but the webhooks: the rate limits meter it, the timeout bounds
/// it, the database may be away, and a path or query parameter may not parse.
const METERED: [SharedError; 4] = [
    SharedError::BadRequest,
    SharedError::TooManyRequests,
    SharedError::Internal,
    SharedError::Unavailable,
];

/// What reading a JSON body adds.
const JSON_BODY: [SharedError; 3] = [
    SharedError::PayloadTooLarge,
    SharedError::UnsupportedMediaType,
    SharedError::Unprocessable,
];

const SIGNED_IN: [SharedError; 1] = [SharedError::Unauthorized];
const ADMIN: [SharedError; 2] = [SharedError::Unauthorized, SharedError::Forbidden];

macro_rules! response_set {
    ($(#[$doc:meta])* $name:ident = $($errors:expr),+) => {
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$(&$errors[..]),+]
                    .concat()
                    .into_iter()
                    .map(|error| (error.status().to_string(), error.reference()))
                    .collect()
            }
        }
    };
}

response_set!(
    /// Anyone may call it; no body.
    Public = METERED
);
response_set!(
    /// Anyone may call it, with a JSON body.
    PublicWithBody = METERED, JSON_BODY
);
response_set!(
    /// A signed-in caller; no body.
    Authenticated = METERED, SIGNED_IN
);
response_set!(
    /// A signed-in caller, with a JSON body.
    AuthenticatedWithBody = METERED, SIGNED_IN, JSON_BODY
);
response_set!(
    /// Admins only; no body.
    Admin = METERED, ADMIN
);
response_set!(
    /// Admins only, with a JSON body.
    AdminWithBody = METERED, ADMIN, JSON_BODY
);
response_set!(
    /// A provider's webhook: a signed raw body, whatever its content type, never rate limited
    /// (a provider retrying a burst must not be refused).
    Webhook = [
        SharedError::BadRequest,
        SharedError::BadSignature,
        SharedError::PayloadTooLarge,
        SharedError::Internal,
        SharedError::Unavailable,
    ]
);
response_set!(
    /// A paginated list's `limit` below 1 or negative `offset` (more than what is allowed is
    /// clamped, not refused).
    Paged = [SharedError::Unprocessable]
);
