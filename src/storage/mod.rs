//! Object storage: staged uploads, variants and originals behind one [`Storage`] value.
//!
//! It wraps an `Arc<dyn ObjectStore>` (local folder today; any object_store backend fits),
//! builds keys in one place (`keys.rs`) and turns keys into public URLs.

mod keys;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

pub use keys::{Keys, content_type};

use crate::config::{Config, StorageLocation};

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
    is_local: bool,
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
        let (store, is_local): (Arc<dyn ObjectStore>, bool) = match &config.storage {
            StorageLocation::Local(root) => {
                std::fs::create_dir_all(root).map_err(|source| StorageError::Folder {
                    path: root.clone(),
                    source,
                })?;
                let fs = LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true);
                (Arc::new(fs), true)
            }
        };
        Ok(Storage {
            store,
            keys,
            public_base_url: config.public_base_url(),
            is_local,
        })
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Whether objects live on the local filesystem (and so are served by this process).
    pub fn is_local(&self) -> bool {
        self.is_local
    }

    /// The public URL of a key.
    pub fn public_url(&self, key: &str) -> String {
        format!("{}/{key}", self.public_base_url)
    }

    /// Writes a whole object.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store.put(&path(key)?, bytes.into()).await?;
        Ok(())
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when there is none.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        Ok(self.store.get(&path(key)?).await?.bytes().await?)
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

    /// Deletes every object under `prefix`.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn delete_all(&self, prefix: &str) -> Result<(), StorageError> {
        for object in self.list(prefix).await? {
            self.delete(&object.key).await?;
        }
        Ok(())
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

    /// Starts a streamed write of `key` (multipart where the store has it).
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store refuses to start the upload.
    pub async fn writer(&self, key: &str) -> Result<ObjectWriter, StorageError> {
        let upload = self.store.put_multipart(&path(key)?).await?;
        Ok(ObjectWriter {
            inner: WriteMultipart::new(upload),
        })
    }
}

/// A streamed write in progress; nothing is visible until [`ObjectWriter::finish`].
pub struct ObjectWriter {
    inner: WriteMultipart,
}

impl ObjectWriter {
    /// Appends bytes, waiting when too many parts are in flight.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when a part upload failed.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.inner.wait_for_capacity(4).await?;
        self.inner.write(bytes);
        Ok(())
    }

    /// Makes the object visible.
    ///
    /// # Errors
    /// [`StorageError::Backend`] when the store fails.
    pub async fn finish(self) -> Result<(), StorageError> {
        self.inner.finish().await?;
        Ok(())
    }

    /// Drops the partial upload.
    pub async fn abort(self) {
        if let Err(e) = self.inner.abort().await {
            tracing::warn!(error = %e, "could not abort a partial upload");
        }
    }
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
