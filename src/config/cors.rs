//! `[cors]`: which browser pages on other origins may call the API (an app's page uploading
//! with a token and polling). Off while `allowed_origins` is empty: browsers then refuse
//! every cross-origin call, the safe default.

use axum::http::{HeaderName, HeaderValue, Method};

use super::raw::RawCors;
use super::{ConfigError, invalid};

/// Cross-origin access, checked here so that building the layer cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// Origins allowed (`https://app.example.com`), or `["*"]` for any; empty: CORS off.
    pub allowed_origins: Vec<String>,
    /// Methods a page may use.
    pub allowed_methods: Vec<String>,
    /// Request headers a page may send (`authorization` for a key or an upload token).
    pub allowed_headers: Vec<String>,
    /// Response headers a page may read beyond the simple ones (`retry-after`).
    pub exposed_headers: Vec<String>,
    /// Whether a page may send cookies; never with the `*` origin.
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_secs: u64,
}

impl CorsConfig {
    /// Whether CORS is on.
    pub fn is_on(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    pub(super) fn read(raw: RawCors) -> Result<CorsConfig, ConfigError> {
        let any_origin = raw.allowed_origins.iter().any(|o| o == "*");
        if any_origin && raw.allowed_origins.len() > 1 {
            return Err(invalid("cors.allowed_origins", "\"*\" stands alone"));
        }
        if any_origin && raw.allow_credentials {
            return Err(invalid(
                "cors.allow_credentials",
                "cannot be true with the \"*\" origin: name the origins",
            ));
        }
        for origin in raw.allowed_origins.iter().filter(|o| *o != "*") {
            if !is_origin(origin) {
                return Err(invalid(
                    "cors.allowed_origins",
                    format!("holds {origin:?}: an origin is scheme://host[:port], no path"),
                ));
            }
        }
        for method in &raw.allowed_methods {
            Method::from_bytes(method.as_bytes()).map_err(|_| {
                invalid(
                    "cors.allowed_methods",
                    format!("holds {method:?}, not a method"),
                )
            })?;
        }
        for (key, headers) in [
            ("cors.allowed_headers", &raw.allowed_headers),
            ("cors.exposed_headers", &raw.exposed_headers),
        ] {
            for header in headers {
                HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| invalid(key, format!("holds {header:?}, not a header name")))?;
            }
        }
        Ok(CorsConfig {
            allowed_origins: raw.allowed_origins,
            allowed_methods: raw.allowed_methods,
            allowed_headers: raw.allowed_headers,
            exposed_headers: raw.exposed_headers,
            allow_credentials: raw.allow_credentials,
            max_age_secs: raw.max_age_secs,
        })
    }
}

/// `scheme://host[:port]` as a browser sends it in `Origin`.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' '])
        && HeaderValue::from_str(text).is_ok()
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn load(cors: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(&format!("[cors]\n{cors}")).unwrap();
        Config::load(None, std::iter::empty(), table)
    }

    #[test]
    fn wrong_values_are_refused_with_their_key() {
        for (cors, key) in [
            (
                "allowed_origins = [\"*\"]\nallow_credentials = true",
                "cors.allow_credentials",
            ),
            (
                "allowed_origins = [\"*\", \"https://a.example\"]",
                "cors.allowed_origins",
            ),
            (
                "allowed_origins = [\"https://a.example/app\"]",
                "cors.allowed_origins",
            ),
            ("allowed_origins = [\"a.example\"]", "cors.allowed_origins"),
            ("allowed_methods = [\"GET POST\"]", "cors.allowed_methods"),
            ("allowed_headers = [\"x y\"]", "cors.allowed_headers"),
        ] {
            let error = load(cors).unwrap_err().to_string();
            assert!(error.contains(key), "{cors}: {error}");
        }
    }

    #[test]
    fn listed_origins_turn_it_on() {
        assert!(!load("").unwrap().cors.is_on());
        let config = load("allowed_origins = [\"https://a.example:8443\"]").unwrap();
        assert!(config.cors.is_on());
    }
}
