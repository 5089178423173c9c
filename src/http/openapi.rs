//! `GET {prefix}/openapi.json`: the OpenAPI 3.1 document of this service, derived from the
//! handlers' `#[utoipa::path]` attributes and the body types they answer with, so it cannot
//! drift from the routes. What depends on the configuration is filled in at start-up: the
//! prefix, the source types, the error codes, access control, and whether `/files` and
//! `/tokens` exist here.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::error::ErrorBody;
use super::{ApiError, events, files, media, status, tokens, upload};
use crate::catalog::views;
use crate::config::{AuthConfig, FilesAccess};

/// The prefix the handlers' attributes are written with.
const WRITTEN_PREFIX: &str = "/image-pipeline";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ximagepipeline",
        description = "Image uploads answered at once with a job id; a background worker makes \
                       resized WebP variants, a blurhash and a metadata-free original. Poll the \
                       status (with `?wait=` to be answered the moment the job ends) until it is \
                       COMPLETE (200), REJECTED (400) or FAILED (500).",
    ),
    paths(
        upload::upload,
        status::status,
        events::events,
        media::list,
        media::get,
        media::delete,
        tokens::mint,
        files::serve,
    ),
    components(schemas(
        ErrorBody,
        upload::UploadAccepted,
        views::MediaView,
        views::MediaPage,
        views::JobPending,
        views::JobComplete,
        views::JobRejected,
        views::JobFailed,
        tokens::UploadToken,
    )),
    tags(
        (name = "uploads", description = "Send an image; get a job id"),
        (name = "jobs", description = "Where a job is"),
        (name = "media", description = "What the jobs made"),
        (name = "files", description = "Stored objects, served by the process (local storage)"),
    )
)]
struct Contract;

/// What of the configuration the document shows.
pub struct Options<'a> {
    /// The API's route prefix, e.g. `/image-pipeline`.
    pub prefix: &'a str,
    /// The configured source types: the values an upload's `sourceType` may take (a media
    /// list may still name one configured before).
    pub source_types: Vec<&'a str>,
    /// Access control, if on: the bearer scheme, and `/tokens`.
    pub auth: Option<&'a AuthConfig>,
    /// Whether this process serves `/files` (local storage).
    pub local_files: bool,
}

/// The document for `options`, as JSON.
pub fn document(options: &Options<'_>) -> Value {
    let mut doc = serde_json::to_value(Contract::openapi()).unwrap_or_else(|_| json!({}));
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        let written = std::mem::take(paths);
        for (path, item) in written {
            let path = match path.strip_prefix(WRITTEN_PREFIX) {
                Some(rest) => format!("{}{rest}", options.prefix),
                None => path,
            };
            paths.insert(path, item);
        }
        let tokens = format!("{}/tokens", options.prefix);
        if options.auth.is_none() {
            paths.remove(&tokens);
        }
        if !options.local_files {
            paths.remove("/files/{key}");
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    if let Some(code) = schemas.pointer_mut("/ApiError/properties/code") {
        code["enum"] = json!(ApiError::CODES);
    }
    for schema in ["/UploadForm", "/TokenRequest"] {
        if let Some(field) = schemas.pointer_mut(&format!("{schema}/properties/sourceType")) {
            field["enum"] = json!(options.source_types);
        }
    }
    if let Some(auth) = options.auth {
        secure(&mut doc, options.prefix, auth);
    }
    doc
}

/// Access control on: every operation asks for a bearer credential (an API key, or an upload
/// token where one stands in), but the status routes without `protect_status` and `/files`
/// unless `files = "key"`.
fn secure(doc: &mut Value, prefix: &str, auth: &AuthConfig) {
    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, or an upload token on the upload and status routes",
        }
    });
    doc["security"] = json!([{ "bearer": [] }]);
    let status = format!("{prefix}/status/");
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let open = (path.starts_with(&status) && !auth.protect_status)
            || (path.starts_with("/files/") && auth.files != FilesAccess::Key);
        if open && let Some(operations) = item.as_object_mut() {
            for operation in operations.values_mut() {
                operation["security"] = json!([]);
            }
        }
    }
}

/// `GET {prefix}/openapi.json`: `document`, serialised once; each answer shares the bytes.
pub fn router(prefix: &str, document: Value) -> Router {
    let body = Bytes::from(document.to_string());
    Router::new().route(
        &format!("{prefix}/openapi.json"),
        get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options<'static> {
        Options {
            prefix: "/img",
            source_types: vec!["avatar", "gallery"],
            auth: None,
            local_files: true,
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_under_the_configured_prefix() {
        let doc = document(&options());
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "/files/{key}",
                "/img/media",
                "/img/media/{mediaId}",
                "/img/status/{jobId}",
                "/img/status/{jobId}/events",
                "/img/upload",
            ]
        );
        let form = &doc["components"]["schemas"]["UploadForm"]["properties"];
        assert_eq!(form["sourceType"]["enum"], json!(["avatar", "gallery"]));
        let codes = &doc["components"]["schemas"]["ApiError"]["properties"]["code"]["enum"];
        assert_eq!(codes.as_array().unwrap().len(), ApiError::CODES.len());
        assert!(doc.get("security").is_none());
    }

    #[test]
    fn every_status_the_status_route_answers_is_documented() {
        let doc = document(&options());
        let responses = doc["paths"]["/img/status/{jobId}"]["get"]["responses"]
            .as_object()
            .unwrap();
        for code in ["200", "202", "400", "404", "500", "503"] {
            assert!(responses.contains_key(code), "{code}");
        }
    }
}
