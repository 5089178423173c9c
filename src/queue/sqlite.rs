//! The embedded job store: SQLite in WAL mode, one file under the data folder.
//!
//! Writes go through one connection, so the process's writers wait in a queue in turn (the
//! pool's) rather than meeting SQLite's lock, whose busy handler sleeps and retries in no order:
//! under sustained load that gave uploads 10-second stalls. Reads use a pool of their own, which
//! WAL lets run beside the writer. Writes that read first (claim) run in `BEGIN IMMEDIATE`, so
//! another process on the same file cannot claim the same row either. The WAL is checkpointed
//! and truncated by [`JobStore::tidy`], and kept to [`WAL_SIZE_LIMIT`] after each checkpoint.
//! Idle workers are woken through an in-process channel. Status changes are published from
//! this process's writes, and as [`Change::Any`] when another process has written to the file
//! (`PRAGMA data_version`, checked every [`SQLITE_POLL`] while anyone is subscribed).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::deliveries::{self, DeliveryRow};
use super::migrations;
use super::rows::{self, JobRow, MediaRow};
use super::statements as sql;
use super::{
    Attempted, Change, Changes, Delivery, Failed, IdempotencyKey, Inserted, Job, JobCounts,
    JobErrorCode, JobId, JobStatus, JobStore, Media, MediaCursor, MediaId, Millis, NewJob,
    PendingCaps, QueueError, SQLITE_POLL, TokenId, acquire_within, prepare_schema, schema_current,
};
use crate::config::DatabaseConfig;

/// Claims the oldest due PENDING job ($2 is now) for worker $1.
///
/// Differs from PostgreSQL's: SQLite has no row locks (no `FOR UPDATE SKIP LOCKED`); the claim
/// runs inside `BEGIN IMMEDIATE`, which takes the write lock before the subquery reads, so two
/// claimers cannot both pick the same row.
const CLAIM: &str = "
    UPDATE jobs SET status = 'PROCESSING', locked_by = $1, locked_at = $2,
           attempts = attempts + 1, updated_at = $2
    WHERE id = (SELECT id FROM jobs WHERE status = 'PENDING' AND run_at <= $2
                ORDER BY run_at, created_at, id LIMIT 1)
    RETURNING *";

/// Bytes the WAL file is truncated to after a checkpoint (`journal_size_limit`): without it
/// the file keeps the largest size it ever reached.
const WAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

/// How long a statement waits for another process's write lock; in this process, writers queue
/// for the one writing connection instead.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Jobs and media in one SQLite database.
pub struct SqliteJobStore {
    /// The one connection that writes.
    writer: SqlitePool,
    /// Connections that only read.
    readers: SqlitePool,
    /// How long a request waits for a connection.
    request_patience: Duration,
    wake: watch::Sender<u64>,
    changes: Changes,
    /// The check for other processes' writes; `None` for an in-memory database.
    other_writes: Option<AbortHandle>,
}

impl SqliteJobStore {
    /// Opens (creating if needed) the database at `config.url` (`sqlite://PATH`) and migrates
    /// it (or checks it is migrated).
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub async fn connect(config: &DatabaseConfig) -> Result<SqliteJobStore, QueueError> {
        let options = SqliteConnectOptions::from_str(&config.url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        let pool = |max: u32| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(config.min_connections.min(max))
                .acquire_timeout(config.acquire_timeout)
                .idle_timeout(config.idle_timeout)
        };
        let in_memory = options.get_filename() == std::path::Path::new(":memory:");
        let writer = pool(1).connect_with(options.clone()).await?;
        prepare_schema(&writer, &migrations::sqlite(), config.migrate_on_start).await?;
        // An in-memory database exists once per connection: there, one pool does everything.
        let readers = match in_memory {
            true => writer.clone(),
            false => {
                pool(config.max_connections)
                    .connect_with(options.clone())
                    .await?
            }
        };
        let changes = Changes::default();
        let other_writes = (!in_memory).then(|| {
            tokio::spawn(watch_other_writes(options.clone(), changes.clone())).abort_handle()
        });
        Ok(SqliteJobStore {
            writer,
            readers,
            request_patience: config.request_acquire_timeout,
            wake: watch::Sender::new(0),
            changes,
            other_writes,
        })
    }

    /// Runs `claim` (an `UPDATE … RETURNING` whose subquery picks the row) in `BEGIN
    /// IMMEDIATE` on the writer, so another process on the file cannot take the same row.
    async fn claim_one<'q, O>(
        &self,
        claim: sqlx::query::QueryAs<'q, Sqlite, O, <Sqlite as sqlx::Database>::Arguments>,
    ) -> Result<Option<O>, QueueError>
    where
        O: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    {
        let mut conn = self.writer.acquire().await?;
        let row = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let row = claim.fetch_optional(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await;
        super::close_if_failed(&mut conn, &row);
        Ok(row?)
    }

    /// Publishes that job `id` changed, when `changed`; passes `changed` on.
    fn changed(&self, id: &JobId, changed: bool) -> bool {
        if changed {
            self.changes.publish(Change::Job(id.clone()));
        }
        changed
    }

    fn wake_workers(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs `statement` (RETRY or DEFER: same parameters) to put a claimed job back to
    /// PENDING, due at `run_at`.
    #[allow(clippy::too_many_arguments)]
    async fn put_back(
        &self,
        statement: &'static str,
        id: &JobId,
        worker: &str,
        code: JobErrorCode,
        error: &str,
        run_at: Millis,
        now: Millis,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(statement)
            .bind(id.as_str())
            .bind(worker)
            .bind(code.as_str())
            .bind(error)
            .bind(run_at)
            .bind(now)
            .execute(&self.writer)
            .await?;
        let put_back = self.changed(id, done.rows_affected() == 1);
        if put_back {
            self.wake_workers();
        }
        Ok(put_back)
    }
}

impl Drop for SqliteJobStore {
    fn drop(&mut self) {
        if let Some(task) = &self.other_writes {
            task.abort();
        }
    }
}

/// Publishes [`Change::Any`] whenever another connection (another process, or this one's
/// writer) has committed to the file since the last look, while anyone is subscribed. Its own
/// connection: `data_version` compares commits seen by one connection.
async fn watch_other_writes(options: SqliteConnectOptions, changes: Changes) {
    let mut tick = tokio::time::interval(SQLITE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<sqlx::SqliteConnection> = None;
    let mut seen: Option<i64> = None;
    loop {
        tick.tick().await;
        if changes.subscribers() == 0 {
            seen = None;
            continue;
        }
        if conn.is_none() {
            conn = sqlx::SqliteConnection::connect_with(&options).await.ok();
            seen = None;
        }
        let Some(c) = conn.as_mut() else { continue };
        match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(&mut *c)
            .await
        {
            Ok(version) => {
                // The first look after a pause or a reconnect cannot tell what changed before it.
                if seen != Some(version) {
                    changes.publish(Change::Any);
                }
                seen = Some(version);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the database for other processes' writes");
                conn = None;
            }
        }
    }
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn insert_keyed(
        &self,
        job: NewJob,
        caps: PendingCaps,
        key: Option<&IdempotencyKey>,
        now: Millis,
    ) -> Result<Inserted, QueueError> {
        let mut conn = acquire_within(&self.writer, self.request_patience).await?;
        let inserted = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            if let Some(key) = key {
                let claimed = sqlx::query(sql::CLAIM_IDEMPOTENCY_KEY)
                    .bind(&key.scope)
                    .bind(&key.key)
                    .bind(job.id.as_str())
                    .bind(&job.source_type)
                    .bind(&job.source_id)
                    .bind(&key.sha256)
                    .bind(key.expires_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if claimed.rows_affected() == 0 {
                    let held = sqlx::query_as(sql::HELD_IDEMPOTENCY_KEY)
                        .bind(&key.scope)
                        .bind(&key.key)
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.rollback().await?;
                    return Ok(rows::held_key(held, &job, key));
                }
            }
            let done = sqlx::query(sql::INSERT_JOB)
                .bind(job.id.as_str())
                .bind(&job.source_type)
                .bind(&job.source_id)
                .bind(&job.staging_key)
                .bind(&job.original_filename)
                .bind(&job.mime_type)
                .bind(job.file_size)
                .bind(i64::from(job.max_attempts))
                .bind(now)
                .bind(&job.client)
                .bind(caps.per_source())
                .bind(caps.per_client())
                .bind(job.token_id.as_ref().map(TokenId::as_str))
                .bind(&job.request_id)
                .bind(&job.trace_parent)
                .bind(&job.webhook_url)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(Inserted::Capped);
            }
            tx.commit().await?;
            Ok(Inserted::Job)
        }
        .await;
        super::close_if_failed(&mut conn, &inserted);
        let inserted = inserted?;
        if inserted == Inserted::Job {
            self.wake_workers();
        }
        Ok(inserted)
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, QueueError> {
        let row = sqlx::query_as::<_, JobRow>(sql::GET_JOB)
            .bind(id.as_str())
            .fetch_optional(&mut *acquire_within(&self.readers, self.request_patience).await?)
            .await?;
        rows::optional(row)
    }

    async fn claim(&self, worker: &str, now: Millis) -> Result<Option<Job>, QueueError> {
        let claim = sqlx::query_as::<_, JobRow>(CLAIM).bind(worker).bind(now);
        let job: Option<Job> = rows::optional(self.claim_one(claim).await?)?;
        if let Some(job) = &job {
            self.changed(&job.id, true);
        }
        Ok(job)
    }

    async fn start_attempt(
        &self,
        id: &JobId,
        worker: &str,
        media_id: &MediaId,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::START_ATTEMPT)
            .bind(id.as_str())
            .bind(worker)
            .bind(media_id.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn heartbeat(&self, id: &JobId, worker: &str, now: Millis) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::HEARTBEAT)
            .bind(id.as_str())
            .bind(worker)
            .bind(now)
            .execute(&self.writer)
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
        let mut conn = self.writer.acquire().await?;
        let done = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let done = sqlx::query(sql::COMPLETE_JOB)
                .bind(id.as_str())
                .bind(worker)
                .bind(media.id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                // Explicitly: a dropped transaction is only rolled back when its connection is next
                // used, and until then it holds the write lock (SQLite) or the table lock (PostgreSQL).
                tx.rollback().await?;
                return Ok::<_, sqlx::Error>(false);
            }
            sqlx::query(sql::INSERT_MEDIA)
                .bind(media.id.as_str())
                .bind(media.job_id.as_str())
                .bind(&media.source_type)
                .bind(&media.source_id)
                .bind(Json(&media.variants))
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
        .await;
        super::close_if_failed(&mut conn, &done);
        Ok(self.changed(id, done?))
    }

    async fn record_moderation(
        &self,
        id: &JobId,
        worker: &str,
        result: &str,
        details: &serde_json::Value,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::RECORD_MODERATION)
            .bind(id.as_str())
            .bind(worker)
            .bind(result)
            .bind(Json(details))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn reject(
        &self,
        id: &JobId,
        worker: &str,
        details: &serde_json::Value,
        now: Millis,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::REJECT)
            .bind(id.as_str())
            .bind(worker)
            .bind(Json(details))
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(self.changed(id, done.rows_affected() == 1))
    }

    async fn fail(
        &self,
        id: &JobId,
        worker: &str,
        failed: Failed<'_>,
        now: Millis,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::FAIL)
            .bind(id.as_str())
            .bind(worker)
            .bind(failed.code.as_str())
            .bind(failed.error)
            .bind(now)
            .bind(failed.upload_kept)
            .execute(&self.writer)
            .await?;
        Ok(self.changed(id, done.rows_affected() == 1))
    }

    async fn retry(
        &self,
        id: &JobId,
        worker: &str,
        code: JobErrorCode,
        error: &str,
        run_at: Millis,
        now: Millis,
    ) -> Result<bool, QueueError> {
        self.put_back(sql::RETRY, id, worker, code, error, run_at, now)
            .await
    }

    async fn defer(
        &self,
        id: &JobId,
        worker: &str,
        code: JobErrorCode,
        error: &str,
        run_at: Millis,
        now: Millis,
    ) -> Result<bool, QueueError> {
        self.put_back(sql::DEFER, id, worker, code, error, run_at, now)
            .await
    }

    async fn requeue(&self, id: &JobId, now: Millis) -> Result<Option<Job>, QueueError> {
        let row = sqlx::query_as::<_, JobRow>(sql::REQUEUE)
            .bind(id.as_str())
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        if row.is_some() {
            self.changed(id, true);
            self.wake_workers();
        }
        rows::optional(row)
    }

    async fn release(&self, worker: &str, now: Millis) -> Result<u64, QueueError> {
        let done = sqlx::query(sql::RELEASE)
            .bind(worker)
            .bind(now)
            .execute(&self.writer)
            .await?;
        if done.rows_affected() > 0 {
            self.changes.publish(Change::Any);
            self.wake_workers();
        }
        Ok(done.rows_affected())
    }

    async fn rescue_stale(
        &self,
        stale_before: Millis,
        now: Millis,
    ) -> Result<Vec<Job>, QueueError> {
        let rows = sqlx::query_as::<_, JobRow>(sql::RESCUE_STALE)
            .bind(stale_before)
            .bind(now)
            .fetch_all(&self.writer)
            .await?;
        if !rows.is_empty() {
            self.changes.publish(Change::Any);
            self.wake_workers();
        }
        rows::all(rows)
    }

    async fn next_run_at(&self) -> Result<Option<Millis>, QueueError> {
        Ok(sqlx::query_scalar(sql::NEXT_RUN_AT)
            .fetch_one(&self.readers)
            .await?)
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>, QueueError> {
        let row = sqlx::query_as::<_, MediaRow>(sql::GET_MEDIA)
            .bind(id.as_str())
            .fetch_optional(&mut *acquire_within(&self.readers, self.request_patience).await?)
            .await?;
        rows::optional(row)
    }

    async fn list_media(
        &self,
        source_type: &str,
        source_id: &str,
        after: Option<&MediaCursor>,
        limit: u32,
    ) -> Result<Vec<Media>, QueueError> {
        let (created_at, id) = after.map_or((Millis::MAX, ""), |c| (c.created_at, c.id.as_str()));
        let rows = sqlx::query_as::<_, MediaRow>(sql::LIST_MEDIA)
            .bind(source_type)
            .bind(source_id)
            .bind(created_at)
            .bind(id)
            .bind(i64::from(limit))
            .fetch_all(&mut *acquire_within(&self.readers, self.request_patience).await?)
            .await?;
        rows::all(rows)
    }

    async fn delete_media(&self, id: &MediaId) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::DELETE_MEDIA)
            .bind(id.as_str())
            .execute(&mut *acquire_within(&self.writer, self.request_patience).await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn check_ready(&self, now: Millis) -> Result<(), QueueError> {
        let mut conn = acquire_within(&self.writer, self.request_patience).await?;
        schema_current(&mut *conn, &migrations::sqlite()).await?;
        sqlx::query(sql::TOUCH_READINESS)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn count_jobs(&self) -> Result<JobCounts, QueueError> {
        let rows = sqlx::query_as::<_, (String, i64, Option<i64>)>(sql::COUNT_JOBS)
            .fetch_all(&mut *acquire_within(&self.readers, self.request_patience).await?)
            .await?;
        rows::counts(rows)
    }

    async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<Job>, QueueError> {
        let rows = sqlx::query_as::<_, JobRow>(sql::LIST_JOBS)
            .bind(status.map(JobStatus::as_str))
            .bind(i64::from(limit))
            .fetch_all(&mut *acquire_within(&self.readers, self.request_patience).await?)
            .await?;
        rows::all(rows)
    }

    async fn forget_ended_jobs(&self, before: Millis) -> Result<u64, QueueError> {
        let done = sqlx::query(sql::FORGET_ENDED_JOBS)
            .bind(before)
            .execute(&self.writer)
            .await?;
        sqlx::query(deliveries::FORGET_SETTLED)
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn spend_token(&self, id: &TokenId, expires_at: Millis) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::SPEND_TOKEN)
            .bind(id.as_str())
            .bind(expires_at)
            .execute(&mut *acquire_within(&self.writer, self.request_patience).await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn tidy(&self, now: Millis) -> Result<(), QueueError> {
        sqlx::query(sql::FORGET_SPENT_TOKENS)
            .bind(now)
            .execute(&self.writer)
            .await?;
        sqlx::query(sql::FORGET_IDEMPOTENCY_KEYS)
            .bind(now)
            .execute(&self.writer)
            .await?;
        // TRUNCATE waits for readers to leave the WAL (they are short), then empties the file;
        // it holds the writing connection meanwhile, so no writer races it.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn claim_delivery(
        &self,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Delivery>, QueueError> {
        let claim = sqlx::query_as::<_, DeliveryRow>(deliveries::CLAIM)
            .bind(now)
            .bind(lease_until);
        rows::optional(self.claim_one(claim).await?)
    }

    async fn settle_delivery(
        &self,
        claimed: &Delivery,
        outcome: &Attempted,
        now: Millis,
    ) -> Result<bool, QueueError> {
        let (status, due, error, delivered_at) = deliveries::settled(outcome, now);
        let done = sqlx::query(deliveries::SETTLE)
            .bind(&claimed.id)
            .bind(i64::from(claimed.attempts))
            .bind(status)
            .bind(due)
            .bind(error)
            .bind(delivered_at)
            .bind(claimed.next_attempt_at)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_deliveries(
        &self,
        job: Option<&JobId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, QueueError> {
        let rows = sqlx::query_as::<_, DeliveryRow>(deliveries::LIST)
            .bind(job.map(JobId::as_str))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
        rows::all(rows)
    }

    async fn resend_delivery(&self, id: &str, now: Millis) -> Result<bool, QueueError> {
        let done = sqlx::query(deliveries::RESEND)
            .bind(id)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn next_delivery_at(&self) -> Result<Option<Millis>, QueueError> {
        Ok(sqlx::query_scalar::<_, Option<i64>>(deliveries::NEXT_DUE)
            .fetch_one(&self.readers)
            .await?)
    }

    async fn statuses(&self, ids: &[JobId]) -> Result<Vec<(JobId, JobStatus)>, QueueError> {
        let ids = serde_json::to_string(&ids.iter().map(JobId::as_str).collect::<Vec<_>>())
            .expect("strings serialize");
        let rows = sqlx::query_as::<_, (String, String)>(
            "SELECT id, status FROM jobs WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(ids)
        .fetch_all(&mut *acquire_within(&self.readers, self.request_patience).await?)
        .await?;
        rows::statuses(rows)
    }

    fn wake_ups(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    fn changes(&self) -> &Changes {
        &self.changes
    }
}
