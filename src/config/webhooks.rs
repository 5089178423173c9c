//! `[webhooks]`: where and how a job's end is sent. Absent, or with neither `url` nor
//! `allowed_callback_hosts`, nothing is sent.

use std::time::Duration;

use super::raw::RawWebhooks;
use super::server::http_url;
use super::{ConfigError, invalid};

/// The shortest secret accepted: 256 bits as text.
const MIN_SECRET: usize = 32;

/// The validated `[webhooks]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhooksConfig {
    /// Where every job's end is sent, unless its upload named its own `callbackUrl`.
    pub url: Option<String>,
    /// The HMAC-SHA256 key of the `Ximagepipeline-Signature` header.
    pub secret: String,
    /// Hosts an upload's `callbackUrl` may name (lower case); none, and uploads cannot.
    pub allowed_callback_hosts: Vec<String>,
    /// Whether targets on loopback, private or link-local addresses are allowed (tests, a
    /// receiver on the same network); off, they are refused, whatever the URL says.
    pub allow_private_targets: bool,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
    /// How long a receiver may take to answer.
    pub timeout: Duration,
    /// The wait before the first retry, doubling with each attempt up to `max_retry`.
    pub first_retry: Duration,
    /// The longest wait between attempts.
    pub max_retry: Duration,
}

/// Reads `[webhooks]`; `None` when nothing is to be sent.
pub fn read(raw: Option<RawWebhooks>) -> Result<Option<WebhooksConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let url = http_url("webhooks.url", raw.url.filter(|u| !u.is_empty()))?;
    if url.is_none() && raw.allowed_callback_hosts.is_empty() {
        return Ok(None);
    }
    let secret = raw.secret.unwrap_or_default();
    if secret.len() < MIN_SECRET {
        return Err(invalid(
            "webhooks.secret",
            format!(
                "must be at least {MIN_SECRET} characters (receivers check signatures with it)"
            ),
        ));
    }
    if raw.max_attempts == 0 {
        return Err(invalid("webhooks.max_attempts", "must be at least 1"));
    }
    if raw.timeout_secs == 0 {
        return Err(invalid("webhooks.timeout_secs", "must be at least 1"));
    }
    Ok(Some(WebhooksConfig {
        url,
        secret,
        allowed_callback_hosts: raw
            .allowed_callback_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        allow_private_targets: raw.allow_private_targets,
        max_attempts: raw.max_attempts,
        timeout: Duration::from_secs(raw.timeout_secs),
        first_retry: Duration::from_secs(raw.first_retry_secs),
        max_retry: Duration::from_secs(raw.max_retry_secs.max(raw.first_retry_secs)),
    }))
}
