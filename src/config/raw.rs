//! The configuration exactly as given: defaults, file, environment and flags as TOML tables,
//! merged in that order, then read into [`RawConfig`] without touching the system.
//!
//! Validation and derived values (URLs, paths, resolved variant lists) live in `config/mod.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::{Table, Value};

use super::{ConfigError, defaults};
use crate::pipeline::Fit;

/// Every key a configuration may hold; unknown keys are refused by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: String,
    pub data_dir: String,
    pub route_prefix: String,
    pub max_file_size: u64,
    pub allowed_mime_types: Vec<String>,
    pub max_pixels: u64,
    pub max_side: u32,
    pub public_base_url: Option<String>,
    pub database_url: Option<String>,
    pub storage_url: Option<String>,
    pub staging_prefix: String,
    pub media_prefix: String,
    pub originals_prefix: String,
    pub variants: BTreeMap<String, RawVariant>,
    pub source_types: BTreeMap<String, RawSourceType>,
    pub worker: RawWorker,
    pub database: RawDatabase,
    pub s3: RawS3,
    pub moderation: Option<RawModeration>,
}

/// A `[variants.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    pub width: u32,
    pub height: Option<u32>,
    pub fit: Fit,
}

/// A `[source_types.<name>]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceType {
    pub variants: Vec<String>,
    pub quality: f32,
    #[serde(default = "defaults::source_type_format")]
    pub format: String,
    #[serde(default = "defaults::keep_original")]
    pub keep_original: bool,
}

/// The `[worker]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    pub concurrency: Option<usize>,
    pub max_attempts: u32,
    pub heartbeat_interval_secs: u64,
    pub stale_timeout_secs: u64,
    pub retry_base_delay_secs: u64,
    pub retry_max_delay_secs: u64,
    pub idle_poll_secs: u64,
    pub staging_grace_secs: u64,
    pub staging_sweep_secs: u64,
    pub shutdown_timeout_secs: u64,
    pub job_timeout_secs: f64,
}

/// The `[database]` table: the pool and how migrations run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub migrate_on_start: bool,
}

/// The `[s3]` table: how to reach the bucket of `storage_url = "s3://…"`. Anything left out is
/// taken from the usual `AWS_*` environment variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub path_style: Option<bool>,
}

/// The `[moderation]` table; absent means no moderation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModeration {
    pub provider: String,
    pub source_types: Vec<String>,
    #[serde(default)]
    pub thresholds: Option<BTreeMap<String, f64>>,
    #[serde(default = "defaults::moderation_fail_open")]
    pub fail_open: bool,
    pub local: Option<RawLocalModerator>,
    pub http: Option<RawHttpModerator>,
}

/// `[moderation.local]`: the open_nsfw model file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocalModerator {
    pub model: String,
}

/// `[moderation.http]`: a moderation service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpModerator {
    pub url: String,
    #[serde(default = "defaults::moderation_http_timeout_secs")]
    pub timeout_secs: f64,
    pub bearer_token: Option<String>,
    #[serde(default = "defaults::moderation_http_image_side")]
    pub image_side: u32,
}

/// Top-level keys whose environment value is a comma-separated list.
const LIST_KEYS: &[&str] = &["allowed_mime_types"];
/// Top-level keys that are tables: set them in the file, not the environment.
const TABLE_KEYS: &[&str] = &[
    "variants",
    "source_types",
    "worker",
    "moderation",
    "database",
    "s3",
];
/// Top-level keys whose value is a number.
const NUMBER_KEYS: &[&str] = &["max_file_size", "max_pixels", "max_side"];
/// Every scalar or list top-level key (`XIP_<KEY>` is accepted for these).
const SCALAR_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "route_prefix",
    "max_file_size",
    "allowed_mime_types",
    "max_pixels",
    "max_side",
    "public_base_url",
    "database_url",
    "storage_url",
    "staging_prefix",
    "media_prefix",
    "originals_prefix",
];

/// Parses a TOML configuration text.
pub fn parse_toml(text: &str, origin: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Syntax {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

/// Turns `XIP_*` variables into a table of top-level keys; an unknown `XIP_` name is an error.
pub fn env_table(vars: impl IntoIterator<Item = (String, String)>) -> Result<Table, ConfigError> {
    let mut table = Table::new();
    for (name, value) in vars {
        let Some(key) = name.strip_prefix("XIP_") else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        if TABLE_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::Invalid {
                key: name,
                message: "is a table; set it in the configuration file".to_owned(),
            });
        }
        if !SCALAR_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::Invalid {
                key: name,
                message: "is not a known setting".to_owned(),
            });
        }
        let value = if LIST_KEYS.contains(&key.as_str()) {
            Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            )
        } else if NUMBER_KEYS.contains(&key.as_str()) {
            let n = value
                .trim()
                .parse::<i64>()
                .map_err(|_| ConfigError::Invalid {
                    key: name.clone(),
                    message: format!("must be a whole number, got {value:?}"),
                })?;
            Value::Integer(n)
        } else {
            Value::String(value)
        };
        table.insert(key, value);
    }
    Ok(table)
}

/// Merges `over` into `base`: tables merge key by key, anything else is replaced.
pub fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Reads the merged table into typed values; serde's message names the offending key.
pub fn from_table(table: Table) -> Result<RawConfig, ConfigError> {
    RawConfig::deserialize(Value::Table(table)).map_err(|e| ConfigError::Syntax {
        origin: "configuration".to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_untouched_fields_of_a_table() {
        let mut base = parse_toml("[variants.md]\nwidth = 640\nfit = \"inside\"", "a").unwrap();
        merge(
            &mut base,
            parse_toml("[variants.md]\nwidth = 800", "b").unwrap(),
        );
        let md = base["variants"]["md"].as_table().unwrap();
        assert_eq!(md["width"].as_integer(), Some(800));
        assert_eq!(md["fit"].as_str(), Some("inside"));
    }

    #[test]
    fn env_lists_are_comma_separated_and_unknown_names_refused() {
        let t = env_table([(
            "XIP_ALLOWED_MIME_TYPES".to_owned(),
            "image/jpeg, image/png".to_owned(),
        )])
        .unwrap();
        assert_eq!(t["allowed_mime_types"].as_array().unwrap().len(), 2);
        let err = env_table([("XIP_NOPE".to_owned(), "1".to_owned())]).unwrap_err();
        assert!(err.to_string().contains("XIP_NOPE"), "{err}");
    }
}
