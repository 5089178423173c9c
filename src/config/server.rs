//! The HTTP side: `listen`, `route_prefix` and `public_base_url`.

use std::net::SocketAddr;

use super::{ConfigError, invalid};

/// Reads `listen` as a socket address.
pub fn listen(listen: &str) -> Result<SocketAddr, ConfigError> {
    listen
        .parse()
        .map_err(|_| invalid("listen", format!("is not an address: {listen:?}")))
}

/// Checks `route_prefix`: it is joined to every route, so `/x`, never `x` or `/x/`.
pub fn route_prefix(prefix: String) -> Result<String, ConfigError> {
    if !prefix.starts_with('/') || prefix.ends_with('/') {
        return Err(invalid(
            "route_prefix",
            "must start with '/' and not end with '/'",
        ));
    }
    Ok(prefix)
}

/// Checks `public_base_url` and drops its trailing slashes; `None` leaves the choice to
/// `Config::public_base_url`.
pub fn public_base_url(url: Option<String>) -> Result<Option<String>, ConfigError> {
    match url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(Some(url.trim_end_matches('/').to_owned()))
        }
        Some(url) => Err(invalid(
            "public_base_url",
            format!("must be an http(s) URL, got {url:?}"),
        )),
        None => Ok(None),
    }
}
