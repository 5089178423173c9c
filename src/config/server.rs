//! The HTTP side: `listen`, `route_prefix`, `public_base_url`, and `[server]`: the bounds that
//! keep `serve` answering on the open internet (connections, how long a client may take to
//! send a request, how fast an upload must arrive).

use std::net::SocketAddr;
use std::time::Duration;

use super::raw::RawServer;
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
    http_url("public_base_url", url)
}

/// Checks that `key`, when given, is an http(s) URL, and drops its trailing slashes.
pub fn http_url(key: &str, url: Option<String>) -> Result<Option<String>, ConfigError> {
    match url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(Some(url.trim_end_matches('/').to_owned()))
        }
        Some(url) => Err(invalid(key, format!("must be an http(s) URL, got {url:?}"))),
        None => Ok(None),
    }
}

/// Bounds on connections and request bodies, for `ximagepipeline serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Connections open at once; past it, new ones wait in the kernel's backlog. Start-up
    /// checks that the file-descriptor limit allows it.
    pub max_connections: usize,
    /// Time to send a request's head; on HTTP/1 also how long a kept-alive connection may wait
    /// before its next request.
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Concurrent streams on one HTTP/2 connection.
    pub http2_max_streams: u32,
    /// Longest pause inside an upload's body.
    pub upload_idle_timeout: Duration,
    /// Bytes per second an upload must average once `upload_grace` has passed, so its total
    /// time grows with its size.
    pub upload_min_bytes_per_sec: u64,
    /// Time every upload gets before the minimum rate applies.
    pub upload_grace: Duration,
    /// On shutdown, how long open connections get to finish their requests.
    pub shutdown_grace: Duration,
    /// Memory all uploads in flight may hold together; past it, uploads get 503 `BUSY`.
    pub upload_memory_bytes: u64,
}

impl ServerConfig {
    pub(super) fn read(raw: &RawServer) -> Result<ServerConfig, ConfigError> {
        let positive = |key: &str, value: u64| {
            if value == 0 {
                Err(invalid(format!("server.{key}"), "must be at least 1"))
            } else {
                Ok(value)
            }
        };
        let secs = |key: &str, value: u64| positive(key, value).map(Duration::from_secs);
        let max_connections = positive("max_connections", raw.max_connections)?;
        let http2_max_streams = positive("http2_max_streams", u64::from(raw.http2_max_streams))?;
        Ok(ServerConfig {
            max_connections: usize::try_from(max_connections)
                .map_err(|_| invalid("server.max_connections", "is too large"))?,
            header_read_timeout: secs("header_read_timeout_secs", raw.header_read_timeout_secs)?,
            idle_timeout: secs("idle_timeout_secs", raw.idle_timeout_secs)?,
            http2_max_streams: u32::try_from(http2_max_streams).unwrap_or(u32::MAX),
            upload_idle_timeout: secs("upload_idle_timeout_secs", raw.upload_idle_timeout_secs)?,
            upload_min_bytes_per_sec: positive(
                "upload_min_bytes_per_sec",
                raw.upload_min_bytes_per_sec,
            )?,
            upload_grace: Duration::from_secs(raw.upload_grace_secs),
            shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
            upload_memory_bytes: positive("upload_memory_bytes", raw.upload_memory_bytes)?,
        })
    }
}
