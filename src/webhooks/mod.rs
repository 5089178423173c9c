//! Webhooks: each job's end sent to the app's backend, signed, from the outbox the job store
//! fills in the transaction that records the end (see `queue::Delivery`).
//!
//! Processes that run workers run one [`Sender`]: it leases due deliveries (so each is sent
//! by one process at a time), sends each within `timeout` without following redirects and
//! only to public addresses unless `allow_private_targets`, and records the outcome:
//! delivered, retried after a doubling delay, or given up after `max_attempts`. A slow or dead
//! receiver holds only its deliveries' slots; jobs never wait on it. At least once: a receiver
//! drops repeats by `Ximagepipeline-Delivery`.

pub mod sign;
mod target;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, views};
use crate::config::WebhooksConfig;
use crate::queue::{Attempted, Delivery, JobStore, Millis, now_ms};

/// Deliveries sent at once by one process.
const CONCURRENCY: usize = 8;
/// The longest an idle sender waits before looking for due deliveries again (a job's end
/// wakes it sooner).
const IDLE: Duration = Duration::from_secs(5);
/// How far past the send's time-out a lease runs: a process that died sending leaves the
/// delivery due again after `timeout` + this.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Ximagepipeline-Signature";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "Ximagepipeline-Delivery";

/// Sends due deliveries. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    jobs: Arc<dyn JobStore>,
    catalog: Catalog,
    config: Arc<WebhooksConfig>,
    client: reqwest::Client,
}

impl Sender {
    /// A sender over `jobs` with the `[webhooks]` settings; `catalog` renders the bodies.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(
        jobs: Arc<dyn JobStore>,
        catalog: Catalog,
        config: WebhooksConfig,
    ) -> Result<Sender, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .dns_resolver(Arc::new(target::PublicResolver {
                allow_private: config.allow_private_targets,
            }))
            .user_agent(concat!("ximagepipeline/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender {
            jobs,
            catalog,
            config: Arc::new(config),
            client,
        })
    }

    /// Sends due deliveries until `shutdown`; what is in flight then is finished (each within
    /// its time-out).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.jobs.changes().subscribe();
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        loop {
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
                () = shutdown.cancelled() => break,
            };
            match self.claim().await {
                Ok(Some(delivery)) => {
                    let sender = self.clone();
                    tokio::spawn(async move {
                        sender.deliver(delivery).await;
                        drop(slot);
                    });
                    continue;
                }
                Ok(None) => drop(slot),
                Err(e) => {
                    drop(slot);
                    tracing::warn!(error = %e, "cannot claim webhook deliveries");
                }
            }
            let wait = match self.jobs.next_delivery_at().await {
                Ok(Some(due)) => Duration::from_millis((due - now_ms()).clamp(0, 5_000) as u64),
                _ => IDLE,
            };
            tokio::select! {
                _ = changes.recv() => {}
                () = tokio::time::sleep(wait.min(IDLE)) => {}
                () = shutdown.cancelled() => break,
            }
        }
        // In-flight sends hold slots: wait for them to end.
        let _ = slots.acquire_many(CONCURRENCY as u32).await;
    }

    /// Sends every delivery due now, one at a time, and returns how many were attempted
    /// (tests and tools; `run` is the service's loop).
    pub async fn send_due(&self) -> usize {
        let mut sent = 0;
        while let Ok(Some(delivery)) = self.claim().await {
            self.deliver(delivery).await;
            sent += 1;
        }
        sent
    }

    async fn claim(&self) -> Result<Option<Delivery>, crate::queue::QueueError> {
        let now = now_ms();
        let lease = (self.config.timeout + LEASE_MARGIN).as_millis() as Millis;
        self.jobs.claim_delivery(now, now + lease).await
    }

    /// One attempt at a claimed delivery, and its outcome recorded.
    async fn deliver(&self, delivery: Delivery) {
        let outcome = match self.attempt(&delivery).await {
            Ok(()) => Attempted::Delivered,
            Err(error) if delivery.attempts >= self.config.max_attempts => {
                Attempted::GaveUp { error }
            }
            Err(error) => Attempted::Retry {
                at: now_ms() + self.backoff(delivery.attempts).as_millis() as Millis,
                error,
            },
        };
        let request = delivery.request_id.as_deref().unwrap_or("");
        match &outcome {
            Attempted::Delivered => tracing::info!(
                delivery = %delivery.id, job = %delivery.job_id, request,
                attempt = delivery.attempts, "webhook delivered"
            ),
            Attempted::Retry { error, .. } => tracing::warn!(
                delivery = %delivery.id, job = %delivery.job_id, request,
                attempt = delivery.attempts, %error, "webhook failed; will retry"
            ),
            Attempted::GaveUp { error } => tracing::error!(
                delivery = %delivery.id, job = %delivery.job_id, request,
                attempt = delivery.attempts, %error, "webhook failed; giving up"
            ),
        }
        let settled = self
            .jobs
            .settle_delivery(&delivery, &outcome, now_ms())
            .await;
        if let Err(e) = settled {
            // The lease runs out and the delivery is sent again: at least once.
            tracing::warn!(delivery = %delivery.id, error = %e, "cannot record a webhook's outcome");
        }
    }

    /// The wait after failed attempt `attempts` (1-based): `first_retry`, doubling, at most
    /// `max_retry`.
    fn backoff(&self, attempts: u32) -> Duration {
        let doubled = self
            .config
            .first_retry
            .saturating_mul(1 << attempts.saturating_sub(1).min(20));
        doubled.min(self.config.max_retry)
    }

    /// Sends the delivery once: `Err` says why it was not taken.
    async fn attempt(&self, delivery: &Delivery) -> Result<(), String> {
        let url = match delivery.url.as_str() {
            "" => self
                .config
                .url
                .clone()
                .ok_or("no [webhooks] url is configured")?,
            url => url.to_owned(),
        };
        let url = reqwest::Url::parse(&url).map_err(|e| format!("{url} is not a URL: {e}"))?;
        target::check_url(&url, self.config.allow_private_targets)?;
        let report = self
            .catalog
            .get_status(&delivery.job_id)
            .await
            .map_err(|e| format!("cannot read the job: {e}"))?
            .ok_or("the job no longer exists")?;
        let body = json!({
            "event": delivery.event,
            "deliveryId": delivery.id,
            "createdAt": Utc.timestamp_millis_opt(delivery.created_at).single().map(|t| t.to_rfc3339()),
            "data": views::status_view(&self.catalog, &report),
        })
        .to_string();
        let sent_at = Utc::now().timestamp();
        let answer = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                sign::signature(&self.config.secret, sent_at, body.as_bytes()),
            )
            .header(DELIVERY_HEADER, &delivery.id)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        match answer.status() {
            status if status.is_success() => Ok(()),
            status => Err(format!("the receiver answered {status}")),
        }
    }
}

/// A send error in words, with its causes (a timeout, a refused connection, a refused address).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
