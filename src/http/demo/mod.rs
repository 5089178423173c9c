//! The demo page at `/`: pick or drop an image, watch it upload and process, see the blurhash
//! and then each variant with its size and bytes, and the source's gallery with delete.
//!
//! Plain HTML, CSS and JavaScript compiled into the binary (nothing fetched from elsewhere),
//! talking to the API routes like any client. The page learns the prefix and the source types
//! from a JSON block the server writes into it, and is served under a strict
//! Content-Security-Policy: its own scripts and styles only.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::config::Config;

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const BLURHASH: &str = include_str!("blurhash.js");
const STYLE: &str = include_str!("style.css");

/// Where the page's configuration goes in `index.html`.
const CONFIG_SLOT: &str = "__XIP_CONFIG__";

/// The page's own scripts and styles only; images (and the size of each, read with `HEAD`)
/// from this origin and the one the media URLs name (`files_origin`, when `public_base_url`
/// points elsewhere); the blurhash is a canvas, a fetched variant a blob URL.
fn content_security_policy(files_origin: &str) -> String {
    format!(
        "default-src 'self'; img-src 'self' {files_origin} data: blob:; \
         connect-src 'self' {files_origin}; style-src 'self'; script-src 'self'; \
         object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of `url`.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// What the page needs to know of the configuration: the API's prefix, the source types with
/// their variants, and the upload limits.
pub fn page_config(config: &Config) -> Value {
    let source_types: serde_json::Map<String, Value> = config
        .source_types
        .iter()
        .map(|(name, st)| {
            let variants: Vec<Value> = st
                .variants
                .iter()
                .filter_map(|v| config.variants.get(v))
                .map(|v| json!({ "name": v.name, "width": v.width, "height": v.height, "fit": v.fit }))
                .collect();
            let described = json!({ "quality": st.quality, "keepOriginal": st.keep_original, "variants": variants });
            (name.clone(), described)
        })
        .collect();
    json!({
        "prefix": config.route_prefix,
        "sourceTypes": source_types,
        "maxFileSize": config.max_file_size,
        "allowedMimeTypes": config.allowed_mime_types,
    })
}

/// `/` (the page, with `page_config` in it) and `/demo/{app.js, blurhash.js, style.css}`; no
/// fallback. `public_base_url` is where the media URLs point.
pub fn demo_router(page_config: &Value, public_base_url: &str) -> Router {
    let policy = HeaderValue::from_str(&content_security_policy(origin(public_base_url)))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    // Made once; each answer shares the bytes.
    let script = "text/javascript; charset=utf-8";
    let files: [(&str, &str, Bytes); 4] = [
        ("/", "text/html; charset=utf-8", page(page_config).into()),
        ("/demo/app.js", script, Bytes::from_static(APP.as_bytes())),
        (
            "/demo/blurhash.js",
            script,
            Bytes::from_static(BLURHASH.as_bytes()),
        ),
        (
            "/demo/style.css",
            "text/css; charset=utf-8",
            Bytes::from_static(STYLE.as_bytes()),
        ),
    ];
    files
        .into_iter()
        .fold(Router::new(), |router, (path, content_type, body)| {
            let policy = policy.clone();
            router.route(
                path,
                get(move || async move { asset(content_type, body, policy) }),
            )
        })
}

/// `index.html` with `page_config` in its slot, `<` escaped so that no value can close the
/// script element the JSON sits in.
fn page(page_config: &Value) -> String {
    let json = page_config.to_string().replace('<', "\\u003c");
    INDEX.replace(CONFIG_SLOT, &json)
}

/// One of the page's files, with its type, the policy, and revalidation on every load (the
/// binary's version is the only cache key there is).
fn asset(content_type: &'static str, body: Bytes, policy: HeaderValue) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_elsewhere_are_allowed_by_their_origin_only() {
        assert_eq!(
            origin("https://cdn.example.com/media"),
            "https://cdn.example.com"
        );
        assert_eq!(
            origin("http://127.0.0.1:3000/files"),
            "http://127.0.0.1:3000"
        );
        let policy = content_security_policy(origin("https://cdn.example.com/x"));
        assert!(policy.contains("img-src 'self' https://cdn.example.com data: blob:"));
        assert!(policy.contains("script-src 'self';"));
    }

    #[test]
    fn the_page_has_one_slot_for_its_configuration() {
        assert_eq!(INDEX.matches(CONFIG_SLOT).count(), 1);
    }

    #[test]
    fn the_configuration_cannot_close_its_script_element() {
        let page = page(&json!({ "prefix": "</script><script>alert(1)</script>" }));
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains(CONFIG_SLOT));
    }
}
