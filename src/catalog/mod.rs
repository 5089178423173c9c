//! The catalogue: what clients read and remove once uploads are queued. Jobs' reports (the job
//! and its media) for the status route, media records, listing and deletion.
//!
//! It holds the job store and the object storage, the settled-report cache (`settled`) that
//! keeps the status route off the database for clients that poll in tight loops, and the hub of
//! clients waiting on a job (`waiting`).

mod settled;
pub mod views;
mod waiting;

use std::sync::Arc;

use crate::ids::{JobId, MediaId};
use crate::queue::{JobReport, JobStore, Media, MediaCursor, MediaPage, QueueError};
use crate::storage::{Storage, StorageError};

pub use waiting::Watch;

/// The most media a client may ask for in one page (`limit`).
pub const MAX_PAGE_LIMIT: u32 = 500;
/// How many media a page holds when the client names no `limit` (the contract's bound on the
/// answer of the days before pages).
pub const DEFAULT_PAGE_LIMIT: u32 = 1_000;

/// Why a catalogue operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The job and media database failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Object storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Reads jobs and media, deletes media. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    jobs: Arc<dyn JobStore>,
    storage: Storage,
    settled: Arc<settled::SettledJobs>,
    waiting: Arc<waiting::Hub>,
}

impl Catalog {
    /// A catalogue over `jobs` and `storage`, with an empty settled-report cache.
    pub fn new(jobs: Arc<dyn JobStore>, storage: Storage) -> Catalog {
        Catalog {
            waiting: Arc::new(waiting::Hub::new(Arc::clone(&jobs))),
            jobs,
            storage,
            settled: Arc::default(),
        }
    }

    /// A job and its media; `None` for an unknown id.
    ///
    /// A settled job's report may come from memory, up to one second old: what changes a
    /// settled report is only a media deleted through another process.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get_status(&self, id: &JobId) -> Result<Option<JobReport>, QueueError> {
        if let Some(report) = self.settled.get(id) {
            return Ok(Some(JobReport::clone(&report)));
        }
        let report = waiting::read_report(self.jobs.as_ref(), id).await?;
        if let Some(report) = &report {
            self.settled.remember(report);
        }
        Ok(report)
    }

    /// Starts watching job `id`: every change of its status from now on is seen by
    /// [`Watch::next_after`]. Read the job with [`Watch::current`] after this, not before.
    pub fn watch(&self, id: &JobId) -> Watch {
        self.waiting.watch(id)
    }

    /// The job's report once it has ended (COMPLETE, REJECTED, FAILED), or as it is at
    /// `deadline`, whichever comes first; `None` for an unknown id.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn wait_until_ended(
        &self,
        id: &JobId,
        deadline: tokio::time::Instant,
    ) -> Result<Option<JobReport>, QueueError> {
        if let Some(report) = self.settled.get(id) {
            return Ok(Some(JobReport::clone(&report)));
        }
        let mut watch = self.watch(id);
        let Some(mut report) = watch.current().await? else {
            return Ok(None);
        };
        while !report.job.status.is_terminal() {
            match tokio::time::timeout_at(deadline, watch.next_after(&report)).await {
                Ok(Some(next)) => report = JobReport::clone(&next),
                Ok(None) | Err(_) => break,
            }
        }
        self.settled.remember(&report);
        Ok(Some(report))
    }

    /// One media record.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn get_media(&self, id: &MediaId) -> Result<Option<Media>, QueueError> {
        self.jobs.get_media(id).await
    }

    /// Up to `limit` media of one source, newest first, after `after` (from the newest when
    /// `None`).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn media_page(
        &self,
        source_type: &str,
        source_id: &str,
        after: Option<&MediaCursor>,
        limit: u32,
    ) -> Result<MediaPage, QueueError> {
        // One more than asked says whether a next page exists.
        let mut media = self
            .jobs
            .list_media(source_type, source_id, after, limit.saturating_add(1))
            .await?;
        let more = media.len() > limit as usize;
        media.truncate(limit as usize);
        let next = media.last().filter(|_| more).map(MediaCursor::after);
        Ok(MediaPage { media, next })
    }

    /// Every media of one source, newest first, read page by page.
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list_media(
        &self,
        source_type: &str,
        source_id: &str,
    ) -> Result<Vec<Media>, QueueError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .media_page(source_type, source_id, after.as_ref(), DEFAULT_PAGE_LIMIT)
                .await?;
            all.extend(page.media);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// Removes every stored object of a media record, then the record; `false` when unknown.
    ///
    /// # Errors
    /// When storage or the database fails; the record stays so the delete can be repeated.
    pub async fn delete_media(&self, id: &MediaId) -> Result<bool, CatalogError> {
        let Some(media) = self.jobs.get_media(id).await? else {
            return Ok(false);
        };
        futures::future::try_join_all(media.keys().map(|key| self.storage.delete(key))).await?;
        let deleted = self.jobs.delete_media(id).await?;
        self.settled.forget(&media.job_id);
        Ok(deleted)
    }

    /// Drops what this process remembers of a job that changed outside the catalogue (a
    /// requeue).
    pub fn forget(&self, id: &JobId) {
        self.settled.forget(id);
    }

    /// The public URL of a stored object.
    pub fn public_url(&self, key: &str) -> String {
        self.storage.public_url(key)
    }
}
