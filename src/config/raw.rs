//! The configuration exactly as given, typed: every key a file, an `XIP_` variable or a flag
//! may set (`sources.rs` merges them), read without touching the system.
//!
//! These structs are the one list of keys: the `XIP_` variables and the check for unknown keys
//! are derived from them (`shape.rs`). Validation and derived values (URLs, paths, resolved
//! variant lists) live in the section modules.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::defaults;
use crate::pipeline::Fit;

/// Every key a configuration may hold; unknown keys are refused by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: String,
    pub data_dir: String,
    pub route_prefix: String,
    pub demo_page: Option<bool>,
    pub log_format: String,
    pub otlp_endpoint: Option<String>,
    pub max_file_size: u64,
    pub idempotency_window_secs: u64,
    pub allowed_mime_types: Vec<String>,
    pub max_pixels: u64,
    pub max_side: u32,
    pub max_decoded_bytes: u64,
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
    pub server: RawServer,
    pub fairness: RawFairness,
    pub cors: RawCors,
    pub moderation: Option<RawModeration>,
    pub auth: Option<RawAuth>,
    pub webhooks: Option<RawWebhooks>,
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

/// The `[server]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub max_connections: u64,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub http2_max_streams: u32,
    pub upload_idle_timeout_secs: u64,
    pub upload_min_bytes_per_sec: u64,
    pub upload_grace_secs: u64,
    pub upload_memory_bytes: u64,
    pub shutdown_grace_secs: u64,
}

/// The `[auth]` table; absent means the API is open.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub keys: Vec<RawApiKey>,
    #[serde(default)]
    pub protect_status: bool,
    #[serde(default = "defaults::auth_files")]
    pub files: String,
    #[serde(default)]
    pub url_secret: Option<String>,
    #[serde(default = "defaults::auth_signed_url_ttl_secs")]
    pub signed_url_ttl_secs: u64,
    #[serde(default)]
    pub token_secret: Option<String>,
    #[serde(default = "defaults::auth_token_ttl_secs")]
    pub token_ttl_secs: u64,
}

/// One `[[auth.keys]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    pub name: String,
    pub sha256: String,
    pub scopes: Vec<String>,
}

/// The `[cors]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age_secs: u64,
}

/// The `[fairness]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFairness {
    pub max_pending_per_source: u64,
    pub max_pending_per_client: u64,
    pub trusted_proxies: Vec<String>,
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
    pub transient_window_secs: u64,
    pub idle_poll_secs: u64,
    pub staging_grace_secs: u64,
    pub staging_sweep_secs: u64,
    pub shutdown_timeout_secs: u64,
    pub job_timeout_secs: f64,
    pub job_retention_days: u64,
}

/// The `[database]` table: the pool and how migrations run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_secs: u64,
    pub request_acquire_timeout_secs: f64,
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

/// The `[webhooks]` table; absent means no job's end is sent anywhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub allowed_callback_hosts: Vec<String>,
    #[serde(default)]
    pub allow_private_targets: bool,
    #[serde(default = "defaults::webhooks_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "defaults::webhooks_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default = "defaults::webhooks_first_retry_secs")]
    pub first_retry_secs: u64,
    #[serde(default = "defaults::webhooks_max_retry_secs")]
    pub max_retry_secs: u64,
}
