//! The embedded job store: SQLite in WAL mode, one file under the data folder.
//!
//! Writes that read first (claim, rescue) run in `BEGIN IMMEDIATE` so two claimers cannot
//! both read the same PENDING row. Idle workers are woken through an in-process channel.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use tokio::sync::watch;

use super::{
    Job, JobId, JobStatus, JobStore, Media, MediaId, Millis, NewJob, QueueError, StoredVariant,
};

/// Jobs and media in one SQLite database.
pub struct SqliteJobStore {
    pool: SqlitePool,
    wake: watch::Sender<u64>,
}

impl SqliteJobStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`) and migrates it.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub async fn connect(url: &str) -> Result<SqliteJobStore, QueueError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(SqliteJobStore {
            pool,
            wake: watch::Sender::new(0),
        })
    }

    fn wake_workers(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

fn job_from_row(row: &SqliteRow) -> Result<Job, QueueError> {
    let status: String = row.try_get("status")?;
    let details: Option<String> = row.try_get("moderation_details")?;
    Ok(Job {
        id: JobId::from_string(row.try_get::<String, _>("id")?),
        status: JobStatus::parse(&status)
            .ok_or_else(|| QueueError::Corrupt(format!("unknown job status {status:?}")))?,
        source_type: row.try_get("source_type")?,
        source_id: row.try_get("source_id")?,
        staging_key: row.try_get("staging_key")?,
        original_filename: row.try_get("original_filename")?,
        mime_type: row.try_get("mime_type")?,
        file_size: row.try_get("file_size")?,
        media_id: row
            .try_get::<Option<String>, _>("media_id")?
            .map(MediaId::from_string),
        attempt_media_id: row
            .try_get::<Option<String>, _>("attempt_media_id")?
            .map(MediaId::from_string),
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")? as u32,
        error: row.try_get("error")?,
        moderation_result: row.try_get("moderation_result")?,
        moderation_details: details
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(|e| QueueError::Corrupt(e.to_string()))?,
        locked_by: row.try_get("locked_by")?,
        locked_at: row.try_get("locked_at")?,
        run_at: row.try_get("run_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn media_from_row(row: &SqliteRow) -> Result<Media, QueueError> {
    let variants: String = row.try_get("variants")?;
    let variants: Vec<(String, StoredVariant)> =
        serde_json::from_str(&variants).map_err(|e| QueueError::Corrupt(e.to_string()))?;
    Ok(Media {
        id: MediaId::from_string(row.try_get::<String, _>("id")?),
        job_id: JobId::from_string(row.try_get::<String, _>("job_id")?),
        source_type: row.try_get("source_type")?,
        source_id: row.try_get("source_id")?,
        variants,
        original_key: row.try_get("original_key")?,
        width: row.try_get::<i64, _>("width")? as u32,
        height: row.try_get::<i64, _>("height")? as u32,
        aspect_ratio: row.try_get("aspect_ratio")?,
        blurhash: row.try_get("blurhash")?,
        format: row.try_get("format")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn insert(&self, job: NewJob, now: Millis) -> Result<(), QueueError> {
        sqlx::query(
            "INSERT INTO jobs (id, status, source_type, source_id, staging_key, original_filename,
                               mime_type, file_size, max_attempts, run_at, created_at, updated_at)
             VALUES (?1, 'PENDING', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?9)",
        )
        .bind(job.id.as_str())
        .bind(&job.source_type)
        .bind(&job.source_id)
        .bind(&job.staging_key)
        .bind(&job.original_filename)
        .bind(&job.mime_type)
        .bind(job.file_size)
        .bind(i64::from(job.max_attempts))
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.wake_workers();
        Ok(())
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, QueueError> {
        sqlx::query("SELECT * FROM jobs WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job_from_row)
            .transpose()
    }

    async fn claim(&self, worker: &str, now: Millis) -> Result<Option<Job>, QueueError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "UPDATE jobs SET status = 'PROCESSING', locked_by = ?1, locked_at = ?2,
                    attempts = attempts + 1, updated_at = ?2
             WHERE id = (SELECT id FROM jobs WHERE status = 'PENDING' AND run_at <= ?2
                         ORDER BY run_at, created_at, id LIMIT 1)
             RETURNING *",
        )
        .bind(worker)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn start_attempt(
        &self,
        id: &JobId,
        worker: &str,
        media_id: &MediaId,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "UPDATE jobs SET attempt_media_id = ?3
             WHERE id = ?1 AND locked_by = ?2 AND status = 'PROCESSING'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(media_id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn heartbeat(&self, id: &JobId, worker: &str, now: Millis) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "UPDATE jobs SET locked_at = ?3
             WHERE id = ?1 AND locked_by = ?2 AND status = 'PROCESSING'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(
        &self,
        id: &JobId,
        worker: &str,
        media: &Media,
        now: Millis,
    ) -> Result<bool, QueueError> {
        let variants = serde_json::to_string(&media.variants)
            .map_err(|e| QueueError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'COMPLETE', media_id = ?3, error = NULL,
                    locked_by = NULL, locked_at = NULL, updated_at = ?4
             WHERE id = ?1 AND locked_by = ?2 AND status = 'PROCESSING'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(media.id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO media (id, job_id, source_type, source_id, variants, original_key,
                                width, height, aspect_ratio, blurhash, format, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(media.id.as_str())
        .bind(media.job_id.as_str())
        .bind(&media.source_type)
        .bind(&media.source_id)
        .bind(variants)
        .bind(&media.original_key)
        .bind(i64::from(media.width))
        .bind(i64::from(media.height))
        .bind(&media.aspect_ratio)
        .bind(&media.blurhash)
        .bind(&media.format)
        .bind(media.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn fail(
        &self,
        id: &JobId,
        worker: &str,
        error: &str,
        now: Millis,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'FAILED', error = ?3, locked_by = NULL, locked_at = NULL,
                    updated_at = ?4
             WHERE id = ?1 AND locked_by = ?2 AND status = 'PROCESSING'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry(
        &self,
        id: &JobId,
        worker: &str,
        error: &str,
        run_at: Millis,
        now: Millis,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'PENDING', error = ?3, run_at = ?4, locked_by = NULL,
                    locked_at = NULL, updated_at = ?5
             WHERE id = ?1 AND locked_by = ?2 AND status = 'PROCESSING'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(error)
        .bind(run_at)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn rescue_stale(&self, stale_before: Millis, now: Millis) -> Result<u64, QueueError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let failed = sqlx::query(
            "UPDATE jobs SET status = 'FAILED', locked_by = NULL, locked_at = NULL, updated_at = ?2,
                    error = 'the worker processing this image stopped responding on every attempt'
             WHERE status = 'PROCESSING' AND locked_at < ?1 AND attempts >= max_attempts",
        )
        .bind(stale_before)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let requeued = sqlx::query(
            "UPDATE jobs SET status = 'PENDING', locked_by = NULL, locked_at = NULL,
                    run_at = ?2, updated_at = ?2
             WHERE status = 'PROCESSING' AND locked_at < ?1",
        )
        .bind(stale_before)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if requeued.rows_affected() > 0 {
            self.wake_workers();
        }
        Ok(failed.rows_affected() + requeued.rows_affected())
    }

    async fn next_run_at(&self) -> Result<Option<Millis>, QueueError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(run_at) FROM jobs WHERE status = 'PENDING'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>, QueueError> {
        sqlx::query("SELECT * FROM media WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(media_from_row)
            .transpose()
    }

    async fn list_media(
        &self,
        source_type: &str,
        source_id: &str,
    ) -> Result<Vec<Media>, QueueError> {
        sqlx::query(
            "SELECT * FROM media WHERE source_type = ?1 AND source_id = ?2
             ORDER BY created_at DESC, id DESC",
        )
        .bind(source_type)
        .bind(source_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(media_from_row)
        .collect()
    }

    async fn delete_media(&self, id: &MediaId) -> Result<bool, QueueError> {
        let done = sqlx::query("DELETE FROM media WHERE id = ?1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    fn wake_ups(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }
}
