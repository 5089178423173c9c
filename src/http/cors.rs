//! The CORS layer `[cors]` describes, on the API and on `/files`: preflights are answered
//! before any route, and a page on an origin not listed gets no `Access-Control-Allow-*`
//! header, so its browser refuses the answer.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// The layer, or `None` when CORS is off. The configuration was checked at load, so every
/// value parses here.
pub fn layer(config: &CorsConfig) -> Option<CorsLayer> {
    if !config.is_on() {
        return None;
    }
    let origins = if config.allowed_origins == ["*"] {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let methods: Vec<Method> = config
        .allowed_methods
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let headers = |names: &[String]| -> Vec<HeaderName> {
        names
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(methods)
            .allow_headers(headers(&config.allowed_headers))
            .expose_headers(headers(&config.exposed_headers))
            .allow_credentials(config.allow_credentials)
            .max_age(Duration::from_secs(config.max_age_secs)),
    )
}
