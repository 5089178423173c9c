//! Where jobs and objects live: `database_url` with `[database]`, `storage_url` with `[s3]`.
//!
//! Two set-ups from one code base: the embedded default (SQLite file and a local folder under
//! `data_dir`) and scale-out (PostgreSQL and an S3-compatible bucket shared by many processes).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawDatabase, RawS3};
use super::{ConfigError, defaults, invalid};

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite://PATH`: one file, one machine.
    Sqlite,
    /// `postgres://…` / `postgresql://…`: shared by any number of processes.
    Postgres,
}

/// The job and media database and its connection pool.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// e.g. `sqlite://./data/ximagepipeline.db` or `postgres://user@host/db`.
    pub url: String,
    /// The engine `url` names.
    pub kind: DatabaseKind,
    /// Most connections one process opens (PostgreSQL: one of them stays open for `LISTEN`).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a worker's query waits for a free connection (or to connect) before failing.
    pub acquire_timeout: Duration,
    /// How long an HTTP request waits for a connection before its 503 `QUEUE_UNAVAILABLE`:
    /// short, so a client hears at once that the database is away.
    pub request_acquire_timeout: Duration,
    /// Idle connections above `min_connections` are closed after this long.
    pub idle_timeout: Duration,
    /// Apply pending migrations when a process starts; when `false`, start-up refuses a
    /// database that `ximagepipeline migrate` has not brought up to date.
    pub migrate_on_start: bool,
}

impl DatabaseConfig {
    /// `url` with the default pool settings: for tests and for embedding a store alone.
    ///
    /// # Errors
    /// When the URL names no supported database.
    pub fn from_url(url: &str) -> Result<DatabaseConfig, ConfigError> {
        let mut flags = toml::Table::new();
        flags.insert("database_url".into(), url.into());
        Ok(super::Config::load(None, std::iter::empty(), flags)?.database)
    }
}

/// Where objects are kept.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageLocation {
    /// A folder on the local filesystem (served under `/files`).
    Local(PathBuf),
    /// A bucket of an S3-compatible service.
    S3(S3Location),
}

/// A bucket of an S3-compatible service (AWS S3, Cloudflare R2, MinIO, …).
#[derive(Clone, PartialEq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// Key prefix inside the bucket (from `s3://bucket/prefix`), without slashes at the ends.
    pub prefix: Option<String>,
    /// Service URL for non-AWS services, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Region; also `AWS_REGION`.
    pub region: Option<String>,
    /// Access key id; also `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Secret access key; also `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials; also `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// `endpoint/bucket/key` addressing (`true`) or `bucket.endpoint/key` (`false`); unset:
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, else path style (object_store's default).
    pub path_style: Option<bool>,
}

impl fmt::Debug for S3Location {
    /// Never prints the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Location")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

impl S3Location {
    /// Where objects can be fetched when no `public_base_url` is configured: the endpoint's
    /// path-style URL, or AWS's virtual-hosted one.
    pub fn default_public_base_url(&self) -> String {
        let base = match (&self.endpoint, self.path_style != Some(false)) {
            (Some(endpoint), true) => format!("{}/{}", endpoint.trim_end_matches('/'), self.bucket),
            (Some(endpoint), false) => match endpoint.split_once("://") {
                Some((scheme, host)) => {
                    format!("{scheme}://{}.{}", self.bucket, host.trim_end_matches('/'))
                }
                None => format!("{endpoint}/{}", self.bucket),
            },
            (None, _) => {
                let region = self.region.as_deref().unwrap_or(defaults::S3_REGION);
                format!("https://{}.s3.{region}.amazonaws.com", self.bucket)
            }
        };
        match &self.prefix {
            Some(prefix) => format!("{base}/{prefix}"),
            None => base,
        }
    }
}

/// Reads `database_url` (default: a SQLite file under `data_dir`) and the `[database]` table.
pub fn database(
    url: Option<String>,
    raw: RawDatabase,
    data_dir: &Path,
) -> Result<DatabaseConfig, ConfigError> {
    let url = url.unwrap_or_else(|| {
        let file = data_dir.join(defaults::DATABASE_FILE);
        format!("sqlite://{}", file.display())
    });
    let kind = if url.starts_with("sqlite:") {
        DatabaseKind::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        DatabaseKind::Postgres
    } else {
        return Err(invalid(
            "database_url",
            "is not supported (use sqlite://PATH or postgres://USER@HOST/DATABASE)",
        ));
    };
    let least = if kind == DatabaseKind::Postgres { 2 } else { 1 };
    if raw.max_connections < least {
        return Err(invalid(
            "database.max_connections",
            format!("must be at least {least} (PostgreSQL keeps one open for LISTEN)"),
        ));
    }
    if raw.min_connections > raw.max_connections {
        return Err(invalid(
            "database.min_connections",
            "must not exceed database.max_connections",
        ));
    }
    if raw.acquire_timeout_secs == 0 {
        return Err(invalid(
            "database.acquire_timeout_secs",
            "must be at least 1",
        ));
    }
    if !(raw.request_acquire_timeout_secs > 0.0 && raw.request_acquire_timeout_secs.is_finite()) {
        return Err(invalid(
            "database.request_acquire_timeout_secs",
            "must be a positive number of seconds",
        ));
    }
    Ok(DatabaseConfig {
        url,
        kind,
        max_connections: raw.max_connections,
        min_connections: raw.min_connections,
        acquire_timeout: Duration::from_secs(raw.acquire_timeout_secs),
        request_acquire_timeout: Duration::from_secs_f64(raw.request_acquire_timeout_secs),
        idle_timeout: Duration::from_secs(raw.idle_timeout_secs),
        migrate_on_start: raw.migrate_on_start,
    })
}

/// Reads `storage_url` (default: `data_dir/objects`) and, for `s3://`, the `[s3]` table.
pub fn storage(
    url: Option<&str>,
    s3: RawS3,
    data_dir: &Path,
) -> Result<StorageLocation, ConfigError> {
    if let Some(endpoint) = &s3.endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        return Err(invalid(
            "s3.endpoint",
            format!("must be an http(s) URL, got {endpoint:?}"),
        ));
    }
    let Some(url) = url else {
        return Ok(StorageLocation::Local(
            data_dir.join(defaults::OBJECTS_FOLDER),
        ));
    };
    if let Some(path) = url.strip_prefix("file://")
        && !path.is_empty()
    {
        return Ok(StorageLocation::Local(PathBuf::from(path)));
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(invalid(
            "storage_url",
            format!("{url:?} is not supported (use file:///PATH or s3://BUCKET[/PREFIX])"),
        ));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !bucket_ok {
        return Err(invalid(
            "storage_url",
            format!("{url:?} does not name a valid bucket (3–63 of a-z, 0-9, '-', '.')"),
        ));
    }
    let prefix = prefix.trim_matches('/');
    Ok(StorageLocation::S3(S3Location {
        bucket: bucket.to_owned(),
        prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
        endpoint: s3.endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        region: s3.region,
        access_key_id: s3.access_key_id,
        secret_access_key: s3.secret_access_key,
        session_token: s3.session_token,
        path_style: s3.path_style,
    }))
}

/// Checks a key prefix (`staging_prefix`, `media_prefix`, `originals_prefix`): slash-separated
/// segments, none empty, `.` or `..`, so keys never escape a local folder.
pub fn key_prefix(key: &str, prefix: String) -> Result<String, ConfigError> {
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
    Ok(prefix)
}
