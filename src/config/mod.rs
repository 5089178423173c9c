//! Configuration: the validated [`Config`] every other module reads.
//!
//! Sources, weakest first: built-in defaults (`defaults.rs`), the TOML file, `XIP_*` environment
//! variables (`env.rs`), command-line flags. All four are TOML tables merged by one rule
//! (`sources.rs`), read into [`RawConfig`], then checked section by section; a wrong key or value
//! stops start-up with a message that names it and the file or variable it came from.

mod auth;
mod backends;
mod cors;
pub mod defaults;
mod env;
mod fairness;
mod moderation;
mod outputs;
mod raw;
mod server;
mod shape;
mod sources;
mod uploads;
mod webhooks;
mod worker;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use auth::{ApiKey, AuthConfig, FilesAccess, MAX_TOKEN_TTL, Scope, UploadTokens};
pub use backends::{DatabaseConfig, DatabaseKind, S3Location, StorageLocation};
pub use cors::CorsConfig;
pub use fairness::FairnessConfig;
pub use moderation::{ModerationConfig, ModerationProvider};
pub use outputs::SourceType;
pub use raw::RawConfig;
pub use server::ServerConfig;
use sources::Layers;
pub use sources::Origin;
use toml::Table;
pub use uploads::{MISSING_FORMATS, SUPPORTED_MIME_TYPES};
pub use webhooks::WebhooksConfig;
pub use worker::WorkerConfig;

use crate::pipeline::{Limits, OutputSpec, VariantSpec};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file named by `--config`.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A source is not valid TOML.
    #[error("{origin}: {message}")]
    Syntax {
        /// Where the text came from.
        origin: Origin,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key the configuration does not have, or a value the service cannot use.
    #[error("{}: {message}", .origin.as_ref().map_or_else(|| key.clone(), |o| o.locate(key)))]
    Invalid {
        /// Where the value came from, when known: the file, the `XIP_` variable, ...
        origin: Option<Origin>,
        /// The key, as a file writes it (`worker.concurrency`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// An invalid value whose source [`Config::load`] fills in.
fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: None,
        key: key.into(),
        message: message.into(),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for a log store.
    Json,
}

impl LogFormat {
    fn parse(word: &str) -> Result<LogFormat, ConfigError> {
        match word {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(invalid("log_format", format!("is {other:?}: text or json"))),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Folder of the embedded database and local objects.
    pub data_dir: PathBuf,
    /// Prefix of the API routes, e.g. `/image-pipeline`.
    pub route_prefix: String,
    /// Whether `serve` shows the demo page at `/`: as configured, else on with local storage
    /// and access control off, off otherwise.
    pub demo_page: bool,
    /// How the binary writes its log lines.
    pub log_format: LogFormat,
    /// Where the binary sends its spans (OTLP over HTTP), with the `otel` feature: the
    /// collector's base URL, `/v1/traces` is added.
    pub otlp_endpoint: Option<String>,
    /// Largest accepted upload, in bytes.
    pub max_file_size: u64,
    /// How long an upload's `Idempotency-Key` answers repeats with the first upload's job.
    pub idempotency_window: std::time::Duration,
    /// MIME types (sniffed from bytes) that uploads may have, aliases written as the sniffed
    /// name (`image/heif` as `image/heic`).
    pub allowed_mime_types: Vec<String>,
    /// Pixel and side limits, checked from the header.
    pub limits: Limits,
    /// Base of every public object URL as configured (no trailing slash); `None` means
    /// this server's own `/files` (see [`Config::public_base_url`]).
    pub public_base_url: Option<String>,
    /// Job and media database and its pool.
    pub database: DatabaseConfig,
    /// Object storage.
    pub storage: StorageLocation,
    /// Key prefix of staged uploads.
    pub staging_prefix: String,
    /// Key prefix of variants.
    pub media_prefix: String,
    /// Key prefix of originals.
    pub originals_prefix: String,
    /// Every variant by name.
    pub variants: BTreeMap<String, VariantSpec>,
    /// Every source type by name.
    pub source_types: BTreeMap<String, SourceType>,
    /// Bounds on connections and uploads for `serve`.
    pub server: ServerConfig,
    /// Caps on pending jobs per source and per client, and the trusted proxies.
    pub fairness: FairnessConfig,
    /// Which browser pages on other origins may call the API.
    pub cors: CorsConfig,
    /// API keys; `None` when the API is open.
    pub auth: Option<AuthConfig>,
    /// Where jobs' ends are sent (`[webhooks]`); `None` sends nothing.
    pub webhooks: Option<WebhooksConfig>,
    /// Worker pool settings.
    pub worker: WorkerConfig,
    /// Content moderation; `None` when off.
    pub moderation: Option<ModerationConfig>,
}

impl Config {
    /// Loads defaults, then `file`, then `XIP_*` variables from `env`, then `flags`, and validates.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, key or value that is wrong.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Table,
    ) -> Result<Config, ConfigError> {
        let layers = Config::layers(file, env, flags)?;
        Config::from_raw(layers.read()?).map_err(|e| layers.locate(e))
    }

    /// The configuration [`Config::load`] would give, as every key's value (secrets masked)
    /// and the source that set it: what `ximagepipeline config` prints.
    ///
    /// # Errors
    /// As [`Config::load`]: an invalid configuration is not explained but refused.
    pub fn explain(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Table,
    ) -> Result<Vec<(String, String, Origin)>, ConfigError> {
        let layers = Config::layers(file, env, flags)?;
        Config::from_raw(layers.read()?).map_err(|e| layers.locate(e))?;
        Ok(layers.effective())
    }

    /// Defaults, then `file`, then `XIP_*` variables, then `flags`, merged.
    fn layers(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Table,
    ) -> Result<Layers, ConfigError> {
        let mut layers = Layers::default();
        let mut add_toml = |text: &str, origin: Origin| match sources::parse_toml(text) {
            Ok(table) => layers.add(table, origin),
            Err(message) => Err(ConfigError::Syntax { origin, message }),
        };
        add_toml(defaults::DEFAULTS, Origin::Defaults)?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            add_toml(&text, Origin::File(path.to_owned()))?;
        }
        for (table, origin) in env::tables(env)? {
            layers.add(table, origin)?;
        }
        layers.add(flags, Origin::Flags)?;
        Ok(layers)
    }

    /// The defaults alone, with `data_dir` set: the embedded set-up, for tests and embedding.
    ///
    /// # Errors
    /// Only if the built-in defaults were broken.
    pub fn embedded(data_dir: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let mut flags = Table::new();
        flags.insert(
            "data_dir".into(),
            data_dir.as_ref().display().to_string().into(),
        );
        Config::load(None, std::iter::empty(), flags)
    }

    /// Checks every value and derives URLs, paths and variant lists, one section at a time.
    ///
    /// # Errors
    /// A [`ConfigError::Invalid`] naming the key.
    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let data_dir = PathBuf::from(&raw.data_dir);
        let variants = outputs::variants(&raw.variants)?;
        let source_types = outputs::source_types(raw.source_types, &variants)?;
        let storage = backends::storage(raw.storage_url.as_deref(), raw.s3, &data_dir)?;
        let auth = auth::read(raw.auth)?;
        let signed = auth
            .as_ref()
            .is_some_and(|a| matches!(a.files, FilesAccess::Signed { .. }));
        if signed && !matches!(storage, StorageLocation::Local(_)) {
            return Err(invalid(
                "auth.files",
                "\"signed\" is for /files on local storage; a bucket or CDN signs its own URLs",
            ));
        }
        let local = matches!(storage, StorageLocation::Local(_));
        let demo_page = raw.demo_page.unwrap_or(local && auth.is_none());
        Ok(Config {
            demo_page,
            listen: server::listen(&raw.listen)?,
            route_prefix: server::route_prefix(raw.route_prefix)?,
            log_format: LogFormat::parse(&raw.log_format)?,
            otlp_endpoint: server::http_url("otlp_endpoint", raw.otlp_endpoint)?,
            public_base_url: server::public_base_url(raw.public_base_url)?,
            max_file_size: uploads::max_file_size(raw.max_file_size)?,
            idempotency_window: uploads::idempotency_window(raw.idempotency_window_secs)?,
            allowed_mime_types: uploads::allowed_mime_types(raw.allowed_mime_types)?,
            limits: uploads::limits(raw.max_pixels, raw.max_side, raw.max_decoded_bytes)?,
            moderation: moderation::read(raw.moderation, &source_types)?,
            database: backends::database(raw.database_url, raw.database, &data_dir)?,
            storage,
            staging_prefix: backends::key_prefix("staging_prefix", raw.staging_prefix)?,
            media_prefix: backends::key_prefix("media_prefix", raw.media_prefix)?,
            originals_prefix: backends::key_prefix("originals_prefix", raw.originals_prefix)?,
            server: ServerConfig::read(&raw.server)?,
            fairness: FairnessConfig::read(&raw.fairness)?,
            cors: CorsConfig::read(raw.cors)?,
            auth,
            webhooks: webhooks::read(raw.webhooks)?,
            worker: worker::read(raw.worker)?,
            data_dir,
            variants,
            source_types,
        })
    }

    /// The base of public object URLs: the configured one, else `http://{listen}/files` for
    /// local storage or the bucket's own URL for S3.
    pub fn public_base_url(&self) -> String {
        match (&self.public_base_url, &self.storage) {
            (Some(url), _) => url.clone(),
            (None, StorageLocation::Local(_)) => format!("http://{}/files", self.listen),
            (None, StorageLocation::S3(s3)) => s3.default_public_base_url(),
        }
    }

    /// What to make for `source_type`, or `None` when it is not configured.
    pub fn output_spec(&self, source_type: &str) -> Option<OutputSpec> {
        let st = self.source_types.get(source_type)?;
        Some(OutputSpec {
            variants: st
                .variants
                .iter()
                .filter_map(|v| self.variants.get(v).cloned())
                .collect(),
            quality: st.quality,
            keep_original: st.keep_original,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Fit;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, file).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(Some(&path), env, Table::new())
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.max_file_size, 52_428_800);
        assert_eq!(c.route_prefix, "/image-pipeline");
        assert_eq!(c.source_types["gallery"].variants, ["md", "lg", "xl"]);
        assert_eq!(c.variants["xs"].fit, Fit::Cover);
        assert_eq!(c.worker.max_attempts, 3);
        assert_eq!(c.public_base_url(), "http://127.0.0.1:3000/files");
        assert_eq!(c.database.kind, DatabaseKind::Sqlite);
        assert!(
            c.database.url.ends_with("ximagepipeline.db"),
            "{}",
            c.database.url
        );
    }

    #[test]
    fn postgres_and_s3_are_read_with_their_tables() {
        let c = load(
            "database_url = \"postgres://u@db.internal/images\"\n\
             storage_url = \"s3://my-bucket/uploads/\"\n\
             [database]\nmax_connections = 4\nmigrate_on_start = false\n\
             [s3]\nendpoint = \"http://127.0.0.1:9000/\"\npath_style = true\n\
             secret_access_key = \"hush\"",
            &[],
        )
        .unwrap();
        assert_eq!(c.database.kind, DatabaseKind::Postgres);
        assert_eq!(c.database.max_connections, 4);
        assert!(!c.database.migrate_on_start);
        let StorageLocation::S3(s3) = &c.storage else {
            panic!("{:?}", c.storage)
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_deref()),
            ("my-bucket", Some("uploads"))
        );
        assert_eq!(
            c.public_base_url(),
            "http://127.0.0.1:9000/my-bucket/uploads"
        );
        assert!(
            !format!("{c:?}").contains("hush"),
            "secrets stay out of logs"
        );
    }

    #[test]
    fn s3_public_url_defaults_to_the_aws_bucket_host() {
        let c = load(
            "storage_url = \"s3://photos\"\n[s3]\nregion = \"eu-west-1\"",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.public_base_url(),
            "https://photos.s3.eu-west-1.amazonaws.com"
        );
        let c = load(
            "storage_url = \"s3://photos\"\npublic_base_url = \"https://cdn.example.com/\"",
            &[],
        )
        .unwrap();
        assert_eq!(c.public_base_url(), "https://cdn.example.com");
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let mut flags = Table::new();
        flags.insert("listen".into(), "127.0.0.1:9000".into());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\nmax_file_size = 10\n").unwrap();
        let env = [
            ("XIP_LISTEN".to_owned(), "127.0.0.1:8000".to_owned()),
            ("XIP_MAX_FILE_SIZE".to_owned(), "20".to_owned()),
        ];
        let c = Config::load(Some(&path), env, flags).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_file_size, 20);
    }

    #[test]
    fn wrong_keys_and_values_are_named() {
        let cases = [
            ("nope = 1", "nope"),
            ("[variants.md]\nwidht = 3", "widht"),
            ("[source_types.x]\nvariants = [\"zz\"]\nquality = 80", "zz"),
            ("allowed_mime_types = [\"image/bmp\"]", "image/bmp"),
            ("max_file_size = \"big\"", "max_file_size"),
            ("database_url = \"mysql://x\"", "database_url"),
            ("storage_url = \"s3://A_B\"", "storage_url"),
            ("storage_url = \"gs://b\"", "storage_url"),
            (
                "[database]\nmax_connections = 0",
                "database.max_connections",
            ),
            ("[s3]\nendpoint = \"localhost:9000\"\n", "s3.endpoint"),
            ("[s3]\nbucket = \"x\"", "bucket"),
        ];
        for (text, needle) in cases {
            let err = load(text, &[]).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn a_wrong_value_in_the_file_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ximagepipeline.toml");
        let file = path.display().to_string();
        for (text, says) in [
            (
                "[worker]\nconcurrency = \"four\"",
                "worker.concurrency: invalid type",
            ),
            (
                "[worker]\nconcurrency = 0",
                "worker.concurrency: must be at least 1",
            ),
            (
                "[worker]\nconcurent = 2",
                "worker.concurent: is not a known key",
            ),
            (
                "[source_types.x]\nquality = 80",
                "source_types.x: missing field `variants`",
            ),
            ("listen = \"here\"", "listen: is not an address"),
            ("listen = ", "TOML parse error"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Config::load(Some(&path), [], Table::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("{file}: {says}")),
                "{text:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn a_wrong_variable_is_named() {
        for (value, says) in [
            ("four", "must be a whole number"),
            ("-1", "invalid value: integer `-1`"),
            ("0", "must be at least 1"),
        ] {
            let err = load("", &[("XIP_WORKER_CONCURRENCY", value)])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("XIP_WORKER_CONCURRENCY: {says}")),
                "{value:?} gave {err:?}"
            );
        }
        let err = load("", &[("XIP_VARIANTS", "{ md = { width = \"wide\" } }")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("XIP_VARIANTS: variants.md.width: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn variables_reach_nested_keys() {
        let c = load(
            "[worker]\nconcurrency = 2",
            &[
                ("XIP_WORKER_CONCURRENCY", "5"),
                ("XIP_DATABASE_MAX_CONNECTIONS", "3"),
                ("XIP_VARIANTS", "{ md = { width = 800 } }"),
            ],
        )
        .unwrap();
        assert_eq!(c.worker.concurrency, 5);
        assert_eq!(c.database.max_connections, 3);
        assert_eq!(
            (c.variants["md"].width, c.variants["md"].fit),
            (800, Fit::Inside)
        );
    }

    #[test]
    fn user_source_types_merge_over_defaults() {
        let c = load("[source_types.banner]\nvariants = [\"xl\"]\nquality = 70\n[source_types.avatar]\nquality = 90", &[]).unwrap();
        assert_eq!(c.source_types["banner"].variants, ["xl"]);
        assert_eq!(c.source_types["avatar"].variants, ["xs", "sm"]);
        assert_eq!(c.source_types["avatar"].quality, 90.0);
        assert!(c.source_types.contains_key("hero"));
    }
}
