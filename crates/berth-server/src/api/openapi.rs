//! The OpenAPI 3.1 document, generated from the `#[utoipa::path]` annotations next to each
//! handler and the `ToSchema` derives on the types they take and return.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Berth API",
        description = "Managed PostgreSQL, Redis, MongoDB and S3 on Docker. Route-compatible with the Temps \
                       managed-services API. Errors are RFC 7807 problem+json; long operations answer when done \
                       (201/200/204, as Temps), or 202 with a pollable operation on `Prefer: respond-async`."
    ),
    // Referenced by the 202 answers (`AcceptedResponse`), which do not register it themselves.
    components(schemas(super::services::Accepted)),
    modifiers(&BearerAuth),
    tags(
        (name = "services", description = "Managed services and their lifecycle"),
        (name = "links", description = "Linking services to projects and the injected variables"),
        (name = "projects", description = "Projects and environments"),
        (name = "operations", description = "Long-running operations"),
        (name = "tokens", description = "API tokens"),
        (name = "system", description = "Server status")
    )
)]
pub struct ApiDoc;

/// Every route requires `Authorization: Bearer <token>`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}
