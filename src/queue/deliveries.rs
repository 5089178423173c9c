//! The webhook outbox: one delivery per end of a job, written by a trigger in the transaction
//! that records the end (migrations sqlite 0009, postgres 0010), then claimed, sent and
//! settled by the worker processes.
//!
//! A claim leases the delivery: it counts the attempt and moves `next_attempt_at` past the
//! send's time-out, so a process that dies while sending leaves it due again when the lease
//! runs out, and no other process sends it meanwhile. Settling is fenced by the attempt count.

use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};

use super::{JobId, Millis, QueueError};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet answered with a 2xx; due at `next_attempt_at`.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryStatus {
    /// The word stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Failed => "FAILED",
        }
    }

    fn parse(word: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }
}

/// One delivery of a job's end to one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `dlv_…`, sent as `Ximagepipeline-Delivery`: a receiver drops repeats by it.
    pub id: String,
    /// The job that ended.
    pub job_id: JobId,
    /// `job.completed`, `job.rejected` or `job.failed`.
    pub event: String,
    /// The upload's `callbackUrl`, or `""` for the configured `[webhooks] url`.
    pub url: String,
    /// When the job ended.
    pub created_at: Millis,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made (a claimed one included).
    pub attempts: u32,
    /// When it is next due (a claimed one: when its lease runs out).
    pub next_attempt_at: Millis,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When a receiver took it.
    pub delivered_at: Option<Millis>,
    /// The id of the request that uploaded the job, for the logs.
    pub request_id: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    /// A 2xx answer.
    Delivered,
    /// Failed; tried again at the given time.
    Retry { at: Millis, error: String },
    /// Failed, and no attempt is left.
    GaveUp { error: String },
}

/// A row of `webhook_deliveries`.
pub(super) struct DeliveryRow {
    id: String,
    job_id: String,
    event: String,
    url: String,
    created_at: i64,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    delivered_at: Option<i64>,
    request_id: Option<String>,
}

impl<'r, R> FromRow<'r, R> for DeliveryRow
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(DeliveryRow {
            id: row.try_get("id")?,
            job_id: row.try_get("job_id")?,
            event: row.try_get("event")?,
            url: row.try_get("url")?,
            created_at: row.try_get("created_at")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            last_error: row.try_get("last_error")?,
            delivered_at: row.try_get("delivered_at")?,
            request_id: row.try_get("request_id")?,
        })
    }
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = QueueError;

    fn try_from(row: DeliveryRow) -> Result<Delivery, QueueError> {
        Ok(Delivery {
            status: DeliveryStatus::parse(&row.status).ok_or_else(|| {
                QueueError::Corrupt(format!("unknown delivery status {:?}", row.status))
            })?,
            attempts: u32::try_from(row.attempts)
                .map_err(|_| QueueError::Corrupt(format!("{} attempts", row.attempts)))?,
            id: row.id,
            job_id: JobId::from_string(row.job_id),
            event: row.event,
            url: row.url,
            created_at: row.created_at,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            delivered_at: row.delivered_at,
            request_id: row.request_id,
        })
    }
}

/// Leases the earliest due delivery ($1 now) until $2, counting the attempt. SQLite runs it
/// in `BEGIN IMMEDIATE`, so the inner select and the update take the write lock together.
pub(super) const CLAIM: &str = "
    UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2
    WHERE id = (SELECT id FROM webhook_deliveries
                WHERE status = 'PENDING' AND next_attempt_at <= $1
                ORDER BY next_attempt_at, id LIMIT 1)
    RETURNING *";

/// [`CLAIM`] for PostgreSQL: concurrent claimers skip rows another holds.
pub(super) const CLAIM_SKIP_LOCKED: &str = "
    UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $2
    WHERE id = (SELECT id FROM webhook_deliveries
                WHERE status = 'PENDING' AND next_attempt_at <= $1
                ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING *";

/// Settles the claim of delivery $1 that counted attempt $2 and leased it until $7: status $3,
/// due $4, error $5, delivered at $6. A claim settled, or leased again since, matches nothing.
pub(super) const SETTLE: &str = "
    UPDATE webhook_deliveries
    SET status = $3, next_attempt_at = $4, last_error = $5, delivered_at = $6
    WHERE id = $1 AND attempts = $2 AND next_attempt_at = $7 AND status = 'PENDING'";

/// The statement's parameters for an outcome at `now`: status, due, error, delivered at.
pub(super) fn settled(
    outcome: &Attempted,
    now: Millis,
) -> (&'static str, Millis, Option<&str>, Option<Millis>) {
    match outcome {
        Attempted::Delivered => (DeliveryStatus::Delivered.as_str(), now, None, Some(now)),
        Attempted::Retry { at, error } => {
            (DeliveryStatus::Pending.as_str(), *at, Some(error), None)
        }
        Attempted::GaveUp { error } => (DeliveryStatus::Failed.as_str(), now, Some(error), None),
    }
}

/// The newest $2 deliveries, of job $1 when it is not NULL.
pub(super) const LIST: &str = "
    SELECT * FROM webhook_deliveries WHERE ($1 IS NULL OR job_id = $1)
    ORDER BY created_at DESC, id DESC LIMIT $2";

/// Makes delivery $1 due again at $2 with its attempts reset.
pub(super) const RESEND: &str = "
    UPDATE webhook_deliveries
    SET status = 'PENDING', attempts = 0, next_attempt_at = $2, last_error = NULL,
        delivered_at = NULL
    WHERE id = $1";

/// Forgets settled deliveries (delivered or given up) of jobs that ended before $1: the
/// retention of ended jobs, applied to their deliveries. Pending ones stay until settled.
pub(super) const FORGET_SETTLED: &str = "
    DELETE FROM webhook_deliveries WHERE status <> 'PENDING' AND created_at < $1";

/// When the earliest pending delivery is due.
pub(super) const NEXT_DUE: &str =
    "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'PENDING'";
