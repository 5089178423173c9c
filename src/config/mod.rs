//! Configuration: the validated [`Config`] every other module reads.
//!
//! Sources, weakest first: built-in defaults (`defaults.rs`), the TOML file, `XIP_*` environment
//! variables, command-line flags. All four are TOML tables merged by one rule (`raw::merge`), then
//! checked here once; a wrong key or value stops start-up with a message that names it.

mod backends;
mod defaults;
mod moderation;
mod raw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use backends::{DatabaseConfig, DatabaseKind, S3Location, StorageLocation};
pub use moderation::{ModerationConfig, ModerationProvider};
pub use raw::RawConfig;
use toml::Table;

use crate::pipeline::{Fit, Limits, OutputSpec, VariantSpec};

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
    /// A source is not valid TOML or holds a key or type the service does not know.
    #[error("{origin}: {message}")]
    Syntax {
        /// Where the text came from.
        origin: String,
        /// The parser's message, naming the key.
        message: String,
    },
    /// A key has a value the service cannot use.
    #[error("{key} {message}")]
    Invalid {
        /// The key, as the user wrote it.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// What one `sourceType` makes.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceType {
    /// Variant names, in the configured order.
    pub variants: Vec<String>,
    /// WebP quality, 1–100.
    pub quality: f32,
    /// Whether the (metadata-stripped) original is stored too.
    pub keep_original: bool,
}

/// Worker pool settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs processed at once by one process (default: one per core).
    pub concurrency: usize,
    /// Attempts before a transiently failing job ends FAILED.
    pub max_attempts: u32,
    /// How often a running job refreshes its claim.
    pub heartbeat_interval: Duration,
    /// A claim not refreshed for this long is taken back.
    pub stale_timeout: Duration,
    /// First retry delay; doubles per attempt.
    pub retry_base_delay: Duration,
    /// Upper bound of the retry delay.
    pub retry_max_delay: Duration,
    /// Safety-net poll when no wake-up arrives.
    pub idle_poll: Duration,
    /// Staging objects with no job at all are removed after this age.
    pub staging_grace: Duration,
    /// How often staging is checked for leftovers.
    pub staging_sweep_interval: Duration,
    /// How long shutdown waits for jobs in hand.
    pub shutdown_timeout: Duration,
    /// Longest time the pixel work of one job may take before it ends FAILED.
    pub job_timeout: Duration,
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
    /// Largest accepted upload, in bytes.
    pub max_file_size: u64,
    /// MIME types (sniffed from bytes) that uploads may have.
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
    /// Worker pool settings.
    pub worker: WorkerConfig,
    /// Content moderation; `None` when off.
    pub moderation: Option<ModerationConfig>,
}

/// MIME types this build can read (AVIF and HEIC need the `heif` feature).
pub const SUPPORTED_MIME_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/tiff",
    #[cfg(feature = "heif")]
    "image/avif",
    #[cfg(feature = "heif")]
    "image/heic",
];

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
        let mut table = raw::parse_toml(defaults::DEFAULTS, "defaults")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            raw::merge(
                &mut table,
                raw::parse_toml(&text, &path.display().to_string())?,
            );
        }
        raw::merge(&mut table, raw::env_table(env)?);
        raw::merge(&mut table, flags);
        Config::from_raw(raw::from_table(table)?)
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

    /// Checks every value and derives URLs, paths and variant lists.
    ///
    /// # Errors
    /// A [`ConfigError::Invalid`] naming the key.
    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let listen: SocketAddr = raw
            .listen
            .parse()
            .map_err(|_| invalid("listen", format!("is not an address: {:?}", raw.listen)))?;
        let data_dir = PathBuf::from(&raw.data_dir);
        if !raw.route_prefix.starts_with('/') || raw.route_prefix.ends_with('/') {
            return Err(invalid(
                "route_prefix",
                "must start with '/' and not end with '/'",
            ));
        }
        if raw.max_file_size == 0 {
            return Err(invalid("max_file_size", "must be more than 0"));
        }
        for mime in &raw.allowed_mime_types {
            if !SUPPORTED_MIME_TYPES.contains(&mime.as_str()) {
                return Err(invalid(
                    "allowed_mime_types",
                    format!(
                        "holds {mime:?}, which is not supported (supported: {})",
                        SUPPORTED_MIME_TYPES.join(", ")
                    ),
                ));
            }
        }
        if raw.max_pixels == 0 || raw.max_side == 0 {
            return Err(invalid("max_pixels/max_side", "must be more than 0"));
        }
        let variants = raw
            .variants
            .iter()
            .map(|(name, v)| {
                if v.width == 0 || v.height == Some(0) {
                    return Err(invalid(format!("variants.{name}"), "needs a width above 0"));
                }
                if v.fit == Fit::Cover && v.height.is_none() {
                    return Err(invalid(
                        format!("variants.{name}"),
                        "has fit = \"cover\", which needs a height",
                    ));
                }
                let spec = VariantSpec {
                    name: name.clone(),
                    width: v.width,
                    height: v.height,
                    fit: v.fit,
                };
                Ok((name.clone(), spec))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let mut source_types = BTreeMap::new();
        for (name, st) in raw.source_types {
            let key = format!("source_types.{name}");
            if st.format != "webp" {
                return Err(invalid(
                    key,
                    format!("has format {:?}; only \"webp\" is produced", st.format),
                ));
            }
            if !(1.0..=100.0).contains(&st.quality) {
                return Err(invalid(key, "has a quality outside 1–100"));
            }
            if let Some(missing) = st.variants.iter().find(|v| !variants.contains_key(*v)) {
                return Err(invalid(
                    key,
                    format!("names an unknown variant {missing:?}"),
                ));
            }
            source_types.insert(
                name,
                SourceType {
                    variants: st.variants,
                    quality: st.quality,
                    keep_original: st.keep_original,
                },
            );
        }
        let moderation = moderation::read(raw.moderation, &source_types)?;
        let database = backends::database(raw.database_url, raw.database, &data_dir)?;
        let storage = backends::storage(raw.storage_url.as_deref(), raw.s3, &data_dir)?;
        let public_base_url = match raw.public_base_url {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_owned())
            }
            Some(url) => {
                return Err(invalid(
                    "public_base_url",
                    format!("must be an http(s) URL, got {url:?}"),
                ));
            }
            None => None,
        };
        for (key, prefix) in [
            ("staging_prefix", &raw.staging_prefix),
            ("media_prefix", &raw.media_prefix),
            ("originals_prefix", &raw.originals_prefix),
        ] {
            let ok = !prefix.is_empty()
                && prefix
                    .split('/')
                    .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
            if !ok {
                return Err(invalid(
                    key,
                    format!("is not a usable key prefix: {prefix:?}"),
                ));
            }
        }
        let w = raw.worker;
        if w.max_attempts == 0 {
            return Err(invalid("worker.max_attempts", "must be at least 1"));
        }
        if w.stale_timeout_secs <= w.heartbeat_interval_secs {
            return Err(invalid(
                "worker.stale_timeout_secs",
                "must be longer than worker.heartbeat_interval_secs",
            ));
        }
        if !(w.job_timeout_secs > 0.0 && w.job_timeout_secs.is_finite()) {
            return Err(invalid(
                "worker.job_timeout_secs",
                "must be a positive number of seconds",
            ));
        }
        let concurrency = match w.concurrency {
            Some(0) => return Err(invalid("worker.concurrency", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let secs = Duration::from_secs;
        Ok(Config {
            listen,
            data_dir,
            route_prefix: raw.route_prefix,
            max_file_size: raw.max_file_size,
            allowed_mime_types: raw.allowed_mime_types,
            limits: Limits {
                max_pixels: raw.max_pixels,
                max_side: raw.max_side,
            },
            public_base_url,
            database,
            storage,
            staging_prefix: raw.staging_prefix,
            media_prefix: raw.media_prefix,
            originals_prefix: raw.originals_prefix,
            variants,
            source_types,
            worker: WorkerConfig {
                concurrency,
                max_attempts: w.max_attempts,
                heartbeat_interval: secs(w.heartbeat_interval_secs),
                stale_timeout: secs(w.stale_timeout_secs),
                retry_base_delay: secs(w.retry_base_delay_secs),
                retry_max_delay: secs(w.retry_max_delay_secs),
                idle_poll: secs(w.idle_poll_secs.max(1)),
                staging_grace: secs(w.staging_grace_secs),
                staging_sweep_interval: secs(w.staging_sweep_secs.max(1)),
                shutdown_timeout: secs(w.shutdown_timeout_secs),
                job_timeout: Duration::from_secs_f64(w.job_timeout_secs),
            },
            moderation,
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
    fn user_source_types_merge_over_defaults() {
        let c = load("[source_types.banner]\nvariants = [\"xl\"]\nquality = 70\n[source_types.avatar]\nquality = 90", &[]).unwrap();
        assert_eq!(c.source_types["banner"].variants, ["xl"]);
        assert_eq!(c.source_types["avatar"].variants, ["xs", "sm"]);
        assert_eq!(c.source_types["avatar"].quality, 90.0);
        assert!(c.source_types.contains_key("hero"));
    }
}
