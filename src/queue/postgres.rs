//! The scale-out job store: PostgreSQL shared by any number of API and worker processes.
//!
//! Workers claim with `FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait on each other
//! nor take the same row. A trigger NOTIFYs whenever a job becomes PENDING, another whenever a
//! job's status changes; each process LISTENs on one connection and turns notifications into
//! wake-ups of its idle workers and published [`Change`]s. The channels are named after the
//! schema, so deployments sharing a database in different schemas stay apart.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
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
    PendingCaps, QueueError, TokenId, acquire_within, prepare_schema, schema_current,
};
use crate::config::DatabaseConfig;

/// Claims the oldest due PENDING job ($2 is now) for worker $1.
///
/// Differs from SQLite's: many processes claim at once, so the subquery locks the row it picks
/// and skips rows other claimers hold (`FOR UPDATE SKIP LOCKED`) instead of waiting on them.
const CLAIM: &str = "
    UPDATE jobs SET status = 'PROCESSING', locked_by = $1, locked_at = $2,
           attempts = attempts + 1, updated_at = $2
    WHERE id = (SELECT id FROM jobs WHERE status = 'PENDING' AND run_at <= $2
                ORDER BY run_at, created_at, id LIMIT 1
                FOR UPDATE SKIP LOCKED)
    RETURNING *";

/// The LISTEN/NOTIFY channels of the current schema: new jobs (migration 0001's trigger), and
/// jobs' status changes with the job id as payload (0008's).
const CHANNELS: &str =
    "SELECT 'xip_' || md5(current_schema()), 'xip_' || md5(current_schema()) || '_changed'";

/// Jobs and media in PostgreSQL.
pub struct PgJobStore {
    pool: PgPool,
    /// How long a request waits for a connection.
    request_patience: std::time::Duration,
    wake: Arc<watch::Sender<u64>>,
    changes: Changes,
    listener: AbortHandle,
}

impl PgJobStore {
    /// Connects a pool as `config` says, migrates (or checks the schema), and starts listening
    /// for new jobs. Honours `?options=-csearch_path%3Dmyschema` in the URL for a schema.
    ///
    /// # Errors
    /// When the server cannot be reached, the schema is behind, or a migration fails.
    pub async fn connect(config: &DatabaseConfig) -> Result<PgJobStore, QueueError> {
        let options: PgConnectOptions = config.url.parse()?;
        // `pg_stat_activity` tells whose each connection is: this process, by the pid that
        // also starts its workers' `locked_by`.
        let application = format!("ximagepipeline-{}", std::process::id());
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(config.idle_timeout)
            .connect_with(options.application_name(&application))
            .await?;
        prepare_schema(&pool, &migrations::postgres(), config.migrate_on_start).await?;
        let (new_jobs, changed): (String, String) =
            sqlx::query_as(CHANNELS).fetch_one(&pool).await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener
            .listen_all([new_jobs.as_str(), changed.as_str()])
            .await?;
        let wake = Arc::new(watch::Sender::new(0));
        let changes = Changes::default();
        let relay = Relay {
            wake: Arc::clone(&wake),
            changes: changes.clone(),
            changed,
        };
        let listener = tokio::spawn(relay.run(listener)).abort_handle();
        Ok(PgJobStore {
            pool,
            request_patience: config.request_acquire_timeout,
            wake,
            changes,
            listener,
        })
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
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Drop for PgJobStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Turns notifications into wake-ups of idle workers and published changes.
struct Relay {
    wake: Arc<watch::Sender<u64>>,
    changes: Changes,
    /// The channel of status changes.
    changed: String,
}

impl Relay {
    /// Relays until aborted. When the listening connection was lost, anything may have
    /// happened meanwhile: workers are woken and [`Change::Any`] is published.
    async fn run(self, mut listener: PgListener) {
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == self.changed => {
                    self.changes
                        .publish(Change::Job(JobId::from_string(n.payload().to_owned())));
                }
                Ok(Some(_)) => self.wake_workers(),
                Ok(None) => {
                    tracing::warn!("LISTEN connection to PostgreSQL lost; reconnected");
                    self.missed();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection to PostgreSQL failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    self.missed();
                }
            }
        }
    }

    fn wake_workers(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn missed(&self) {
        self.wake_workers();
        self.changes.publish(Change::Any);
    }
}

#[async_trait]
impl JobStore for PgJobStore {
    async fn insert_keyed(
        &self,
        job: NewJob,
        caps: PendingCaps,
        key: Option<&IdempotencyKey>,
        now: Millis,
    ) -> Result<Inserted, QueueError> {
        let mut conn = acquire_within(&self.pool, self.request_patience).await?;
        let inserted = async {
            let mut tx = conn.begin().await?;
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
        Ok(inserted)
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, QueueError> {
        let row = sqlx::query_as::<_, JobRow>(sql::GET_JOB)
            .bind(id.as_str())
            .fetch_optional(&mut *acquire_within(&self.pool, self.request_patience).await?)
            .await?;
        rows::optional(row)
    }

    async fn claim(&self, worker: &str, now: Millis) -> Result<Option<Job>, QueueError> {
        let row = sqlx::query_as::<_, JobRow>(CLAIM)
            .bind(worker)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        rows::optional(row)
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
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn heartbeat(&self, id: &JobId, worker: &str, now: Millis) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::HEARTBEAT)
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
        let mut conn = self.pool.acquire().await?;
        let done = async {
            let mut tx = conn.begin().await?;
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
        Ok(done?)
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
            .execute(&self.pool)
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
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
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
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
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
            .fetch_optional(&self.pool)
            .await?;
        rows::optional(row)
    }

    async fn release(&self, worker: &str, now: Millis) -> Result<u64, QueueError> {
        let done = sqlx::query(sql::RELEASE)
            .bind(worker)
            .bind(now)
            .execute(&self.pool)
            .await?;
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
            .fetch_all(&self.pool)
            .await?;
        rows::all(rows)
    }

    async fn next_run_at(&self) -> Result<Option<Millis>, QueueError> {
        Ok(sqlx::query_scalar(sql::NEXT_RUN_AT)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn get_media(&self, id: &MediaId) -> Result<Option<Media>, QueueError> {
        let row = sqlx::query_as::<_, MediaRow>(sql::GET_MEDIA)
            .bind(id.as_str())
            .fetch_optional(&mut *acquire_within(&self.pool, self.request_patience).await?)
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
            .fetch_all(&mut *acquire_within(&self.pool, self.request_patience).await?)
            .await?;
        rows::all(rows)
    }

    async fn delete_media(&self, id: &MediaId) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::DELETE_MEDIA)
            .bind(id.as_str())
            .execute(&mut *acquire_within(&self.pool, self.request_patience).await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn check_ready(&self, now: Millis) -> Result<(), QueueError> {
        let mut conn = acquire_within(&self.pool, self.request_patience).await?;
        schema_current(&mut *conn, &migrations::postgres()).await?;
        sqlx::query(sql::TOUCH_READINESS)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn count_jobs(&self) -> Result<JobCounts, QueueError> {
        let rows = sqlx::query_as::<_, (String, i64, Option<i64>)>(sql::COUNT_JOBS)
            .fetch_all(&mut *acquire_within(&self.pool, self.request_patience).await?)
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
            .fetch_all(&mut *acquire_within(&self.pool, self.request_patience).await?)
            .await?;
        rows::all(rows)
    }

    async fn forget_ended_jobs(&self, before: Millis) -> Result<u64, QueueError> {
        let done = sqlx::query(sql::FORGET_ENDED_JOBS)
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query(deliveries::FORGET_SETTLED)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn spend_token(&self, id: &TokenId, expires_at: Millis) -> Result<bool, QueueError> {
        let done = sqlx::query(sql::SPEND_TOKEN)
            .bind(id.as_str())
            .bind(expires_at)
            .execute(&mut *acquire_within(&self.pool, self.request_patience).await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn tidy(&self, now: Millis) -> Result<(), QueueError> {
        sqlx::query(sql::FORGET_SPENT_TOKENS)
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(sql::FORGET_IDEMPOTENCY_KEYS)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn claim_delivery(
        &self,
        now: Millis,
        lease_until: Millis,
    ) -> Result<Option<Delivery>, QueueError> {
        let row = sqlx::query_as::<_, DeliveryRow>(deliveries::CLAIM_SKIP_LOCKED)
            .bind(now)
            .bind(lease_until)
            .fetch_optional(&self.pool)
            .await?;
        rows::optional(row)
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
            .execute(&self.pool)
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
            .fetch_all(&self.pool)
            .await?;
        rows::all(rows)
    }

    async fn resend_delivery(&self, id: &str, now: Millis) -> Result<bool, QueueError> {
        let done = sqlx::query(deliveries::RESEND)
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn next_delivery_at(&self) -> Result<Option<Millis>, QueueError> {
        Ok(sqlx::query_scalar::<_, Option<i64>>(deliveries::NEXT_DUE)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn statuses(&self, ids: &[JobId]) -> Result<Vec<(JobId, JobStatus)>, QueueError> {
        let ids: Vec<&str> = ids.iter().map(JobId::as_str).collect();
        let rows =
            sqlx::query_as::<_, (String, String)>("SELECT id, status FROM jobs WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&mut *acquire_within(&self.pool, self.request_patience).await?)
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
