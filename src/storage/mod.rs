//! Object storage: staged uploads, variants and originals behind one [`Storage`] value.
//!
//! It wraps an `Arc<dyn ObjectStore>` (a local folder, or an S3-compatible bucket), builds keys
//! in one place (`keys.rs`) and turns keys into public URLs, signed when `[auth] files =
//! "signed"` (`signed.rs`).

mod keys;
mod signed;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, AttributeValue, Attributes, ObjectStore, ObjectStoreExt, PutOptions,
};
use tokio::io::AsyncWriteExt;

pub use keys::{Keys, content_type};
pub use signed::UrlSigner;

use crate::config::{Config, FilesAccess, S3Location, StorageLocation};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// No object has this key.
    #[error("object not found: {0}")]
    NotFound(String),
    /// The key is not a valid object path (e.g. it holds `..`).
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    /// The store failed or could not be reached.
    #[error("object storage error: {0}")]
    Backend(#[source] object_store::Error),
    /// Writing a streamed object failed outside the store.
    #[error("object write failed: {0}")]
    Io(#[source] std::io::Error),
    /// The local storage folder could not be created.
    #[error("cannot create storage folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Whether the store itself is failing (unreachable, I/O errors), as opposed to a request
    /// for something that is not there or cannot be named.
    pub fn is_outage(&self) -> bool {
        match self {
            StorageError::Backend(e) => matches!(
                e,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            StorageError::Io(_) | StorageError::Folder { .. } => true,
            StorageError::NotFound(_) | StorageError::InvalidKey(_) => false,
        }
    }

    /// Whether the store did not answer at all (no connection, a time-out), as opposed to
    /// answering with a refusal (wrong credentials, no such bucket): the first may pass by
    /// itself, the second needs the operator.
    pub fn is_unreachable(&self) -> bool {
        self.causes()
            .any(|e| e.is::<object_store::client::HttpError>() || e.is::<std::io::Error>())
    }

    /// Whether the store ran out of space (a full disk or quota on a local store).
    pub fn is_full(&self) -> bool {
        self.causes()
            .filter_map(|e| e.downcast_ref::<std::io::Error>())
            .any(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            })
    }

    /// This error and every cause beneath it, outermost first.
    fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        std::iter::successors(Some(self as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
    }
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => StorageError::NotFound(path),
            e => StorageError::Backend(e),
        }
    }
}

/// An object listed from the store.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// When it was last written.
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// The object store with our keys and URLs.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    keys: Keys,
    public_base_url: String,
    /// The folder of a local store (`None` for a bucket).
    local_root: Option<PathBuf>,
    location: String,
    /// Signs public URLs, when `/files` serves only signed links.
    signer: Option<UrlSigner>,
}

impl Storage {
    /// Opens the store the configuration names, creating a local folder if needed.
    ///
    /// # Errors
    /// When the folder cannot be created or the store cannot be configured.
    pub fn open(config: &Config) -> Result<Storage, StorageError> {
        let keys = Keys {
            staging: config.staging_prefix.clone(),
            media: config.media_prefix.clone(),
            originals: config.originals_prefix.clone(),
        };
        let (store, local_root): (Arc<dyn ObjectStore>, Option<PathBuf>) = match &config.storage {
            StorageLocation::Local(root) => {
                std::fs::create_dir_all(root).map_err(|source| StorageError::Folder {
                    path: root.clone(),
                    source,
                })?;
                let fs = LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true);
                (Arc::new(fs), Some(root.clone()))
            }
            StorageLocation::S3(s3) => (open_s3(s3)?, None),
        };
        let location = match &config.storage {
            StorageLocation::Local(root) => format!("file://{}", root.display()),
            StorageLocation::S3(s3) => match &s3.prefix {
                Some(prefix) => format!("s3://{}/{prefix}", s3.bucket),
                None => format!("s3://{}", s3.bucket),
            },
        };
        Ok(Storage {
            store,
            keys,
            public_base_url: config.public_base_url(),
            local_root,
            location,
            signer: config.auth.as_ref().and_then(|auth| match &auth.files {
                FilesAccess::Signed { secret, ttl } => Some(UrlSigner::new(secret, *ttl)),
                FilesAccess::Public | FilesAccess::Key => None,
            }),
        })
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Whether objects live on the local filesystem (and so are served by this process).
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Where the objects are, for messages: `file:///…` or `s3://bucket[/prefix]`.
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// Asks the store for one listing page: fails when the bucket, endpoint or credentials are
    /// wrong.
    ///
    /// # Errors
    /// [`StorageError::Backend`] with the store's answer.
    pub async fn check(&self) -> Result<(), StorageError> {
        let staging = path(&self.keys.staging)?;
        match self.store.list(Some(&staging)).next().await {
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The public URL of a key; with signed links, valid for their time to live from now.
    pub fn public_url(&self, key: &str) -> String {
        match &self.signer {
            Some(signer) => format!("{}/{key}?{}", self.public_base_url, signer.query(key)),
            None => format!("{}/{key}", self.public_base_url),
        }
    }

    /// The signer of `/files` links, when only signed links are served.
    pub fn signer(&self) -> Option<&UrlSigner> {
        self.signer.as_ref()
    }

    /// Writes a whole object. In a bucket, a public object carries its `Content-Type` and the
    /// `Cache-Control` that `/files` sends, so a bucket or CDN serving it directly answers the
    /// same (a local folder keeps no attributes: `/files` adds them).
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let options = PutOptions {
            attributes: self.attributes(key),
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path(key)?, bytes.into(), options)
            .await?;
        Ok(())
    }

    /// The attributes an object at `key` is stored with.
    fn attributes(&self, key: &str) -> Attributes {
        if self.is_local() || !self.keys.is_public(key) {
            return Attributes::new();
        }
        Attributes::from_iter([
            (
                Attribute::ContentType,
                AttributeValue::from(content_type(key)),
            ),
            (Attribute::CacheControl, AttributeValue::from(IMMUTABLE)),
        ])
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is none.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        Ok(self.store.get(&path(key)?).await?.bytes().await?)
    }

    /// Reads a byte range of an object.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is none.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StorageError> {
        Ok(self.store.get_range(&path(key)?, range).await?)
    }

    /// Streams an object, with its size.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is none.
    pub async fn stream(
        &self,
        key: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, StorageError>>), StorageError> {
        let got = self.store.get(&path(key)?).await?;
        let size = got.meta.size;
        Ok((size, got.into_stream().map_err(StorageError::from).boxed()))
    }

    /// Deletes an object; deleting one that is not there is not an error.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every object a job's attempt may have stored under `media` (variants and
    /// original), whether or not the attempt got as far as recording them. On a local store the
    /// folders go whole, with the temporary files (`name#N`) of writes a crash cut short, which
    /// listings do not show.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn delete_attempt(
        &self,
        source_type: &str,
        source_id: &str,
        media: &crate::ids::MediaId,
    ) -> Result<(), StorageError> {
        for folder in self.keys.media_folders(source_type, source_id, media) {
            match &self.local_root {
                Some(root) => remove_folder(root, &folder).await?,
                None => {
                    for object in self.list(&folder).await? {
                        self.delete(&object.key).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The temporary files directly under `prefix` that a local store's writes make
    /// (`name#N`, renamed to `name` when complete), so a sweep can remove those a crash left.
    /// A bucket has none: its unfinished multipart uploads are invisible to listings and are
    /// removed by the bucket's lifecycle rule (see the README).
    ///
    /// # Errors
    /// [`StorageError::Io`] when the folder cannot be read.
    pub async fn list_temporaries(&self, prefix: &str) -> Result<Vec<Listed>, StorageError> {
        let Some(root) = &self.local_root else {
            return Ok(Vec::new());
        };
        let folder = root.join(path(prefix)?.as_ref());
        let mut found = Vec::new();
        let mut entries = match tokio::fs::read_dir(&folder).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(StorageError::Io(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(StorageError::Io)? {
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| n.contains('#')) else {
                continue;
            };
            let modified = entry.metadata().await.and_then(|m| m.modified());
            let Ok(modified) = modified else { continue };
            found.push(Listed {
                key: format!("{prefix}/{name}"),
                last_modified: modified.into(),
            });
        }
        Ok(found)
    }

    /// Deletes a temporary file [`Storage::list_temporaries`] found (the store itself refuses
    /// its names); not being there is not an error.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the file cannot be removed.
    pub async fn delete_temporary(&self, key: &str) -> Result<(), StorageError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        match tokio::fs::remove_file(root.join(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::Io(e)),
            _ => Ok(()),
        }
    }

    /// Whether an object exists.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        match self.store.head(&path(key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under `prefix`.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StorageError> {
        self.store
            .list(Some(&path(prefix)?))
            .map_ok(|m| Listed {
                key: m.location.to_string(),
                last_modified: m.last_modified,
            })
            .map_err(StorageError::from)
            .try_collect()
            .await
    }

    /// Starts a streamed write of `key` that holds at most [`Storage::write_buffer_bytes`] in
    /// memory, whatever the object's size: a local file is written through in small pieces; a
    /// bucket gets one multipart part at a time (S3's minimum part is 5 MiB).
    ///
    /// # Errors
    /// [`StorageError::InvalidKey`] for a key that is not a valid object path.
    pub fn writer(&self, key: &str) -> Result<ObjectWriter, StorageError> {
        let writer = BufWriter::with_capacity(
            Arc::clone(&self.store),
            path(key)?,
            self.write_buffer_bytes(),
        )
        .with_max_concurrency(1)
        .with_attributes(self.attributes(key));
        Ok(ObjectWriter { inner: writer })
    }

    /// The most one [`ObjectWriter`] buffers.
    pub fn write_buffer_bytes(&self) -> usize {
        if self.is_local() {
            LOCAL_PIECE
        } else {
            PART_SIZE
        }
    }
}

/// Size of a multipart upload's parts in a bucket (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Size of the pieces a local file is written in.
pub const LOCAL_PIECE: usize = 64 * 1024;
/// `Cache-Control` of stored media: a key never changes content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A streamed write in progress; nothing is visible until [`ObjectWriter::finish`].
pub struct ObjectWriter {
    inner: BufWriter,
}

impl ObjectWriter {
    /// Appends bytes, waiting when too many parts are in flight.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when a part upload failed.
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        self.inner.put(bytes).await?;
        Ok(())
    }

    /// Makes the object visible.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn finish(mut self) -> Result<(), StorageError> {
        self.inner.shutdown().await.map_err(|e| {
            match e
                .into_inner()
                .map(|inner| inner.downcast::<object_store::Error>())
            {
                Some(Ok(e)) => StorageError::from(*e),
                Some(Err(other)) => StorageError::Io(std::io::Error::other(other)),
                None => StorageError::Io(std::io::Error::other("write failed")),
            }
        })
    }

    /// Drops the partial upload.
    pub async fn abort(mut self) {
        if let Err(e) = self.inner.abort().await {
            tracing::warn!(error = %e, "could not abort a partial upload");
        }
    }
}

/// How object_store retries one request: a few tries within 15 s ride out a blip (a dropped
/// connection, a 503 SlowDown); a longer outage is the job's to wait out (`worker::retry`),
/// with no request, and no worker slot, stuck in minutes of retries (the default allows 3).
fn s3_retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 4,
        retry_timeout: std::time::Duration::from_secs(15),
        ..object_store::RetryConfig::default()
    }
}

/// An S3 client for `s3`: settings left out of the configuration come from `AWS_*` variables.
fn open_s3(s3: &S3Location) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&s3.bucket)
        .with_retry(s3_retry());
    if let Some(path_style) = s3.path_style {
        builder = builder.with_virtual_hosted_style_request(!path_style);
    }
    if let Some(endpoint) = &s3.endpoint {
        // A plain-http endpoint is a deliberate choice (a server on loopback or a private net).
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &s3.access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &s3.session_token {
        builder = builder.with_token(token);
    }
    let bucket = builder.build()?;
    Ok(match &s3.prefix {
        Some(prefix) => Arc::new(PrefixStore::new(bucket, prefix.as_str())),
        None => Arc::new(bucket),
    })
}

/// Removes `folder` (a key prefix) of the local store under `root` with everything in it, then
/// its parents up to the top prefix while they are empty (as the store's own deletes do).
async fn remove_folder(root: &std::path::Path, folder: &str) -> Result<(), StorageError> {
    let target = root.join(path(folder)?.as_ref());
    match tokio::fs::remove_dir_all(&target).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StorageError::Io(e)),
        _ => {}
    }
    let mut parent = target.parent();
    while let Some(dir) = parent.filter(|d| d.starts_with(root) && *d != root) {
        // Fails (and stops) at the first folder that still holds something.
        if tokio::fs::remove_dir(dir).await.is_err() {
            break;
        }
        parent = dir.parent();
    }
    Ok(())
}

fn path(key: &str) -> Result<Path, StorageError> {
    Path::parse(key).map_err(|_| StorageError::InvalidKey(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_climb_out_are_refused() {
        for key in ["../etc/passwd", "media/../../x", "media/./x"] {
            assert!(path(key).is_err(), "{key}");
        }
        assert!(path("media/a/b.webp").is_ok());
    }
}
