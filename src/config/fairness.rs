//! `[fairness]`: how many jobs one source or one client may have waiting, so one uploader
//! cannot fill the queue ahead of everyone (issue 12), and which proxies may name the client.

use std::net::IpAddr;

use super::raw::RawFairness;
use super::{ConfigError, invalid};

/// Caps on pending jobs (PENDING or PROCESSING) and the proxies trusted to forward a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FairnessConfig {
    /// Pending jobs one `sourceType` + `sourceId` may have; past it, uploads get 429
    /// `TOO_MANY_PENDING`.
    pub max_pending_per_source: u64,
    /// Pending jobs one client (its address) may have; past it, uploads get 429
    /// `TOO_MANY_PENDING`.
    pub max_pending_per_client: u64,
    /// Peers whose `X-Forwarded-For` names the client (its rightmost address that is not one
    /// of these); any other peer is the client itself.
    pub trusted_proxies: Vec<IpAddr>,
}

impl FairnessConfig {
    pub(super) fn read(raw: &RawFairness) -> Result<FairnessConfig, ConfigError> {
        let positive = |key: &str, value: u64| {
            if value == 0 {
                Err(invalid(format!("fairness.{key}"), "must be at least 1"))
            } else {
                Ok(value)
            }
        };
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .map(|ip| {
                ip.trim().parse().map_err(|_| {
                    invalid(
                        "fairness.trusted_proxies",
                        format!("holds {ip:?}, which is not an IP address"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(FairnessConfig {
            max_pending_per_source: positive("max_pending_per_source", raw.max_pending_per_source)?,
            max_pending_per_client: positive("max_pending_per_client", raw.max_pending_per_client)?,
            trusted_proxies,
        })
    }
}
