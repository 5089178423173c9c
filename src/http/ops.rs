//! The operator's routes (API.md §4b `ops_router`): `GET /healthz` (the process answers),
//! `GET /readyz` (it can do its work) and `GET /metrics` (Prometheus text). Never behind
//! access control: a load balancer and a scraper hold no key. They say nothing a client could
//! use: a failed check names the part and a safe sentence; the detail goes to the logs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::metrics::{CONTENT_TYPE, Metrics};
use crate::queue::{JobStore, QueueError, now_ms};
use crate::storage::Storage;

/// How long one readiness answer is reused: a probe storm costs one database write and one
/// storage listing per this, however many requests come.
const READY_MAX_AGE: Duration = Duration::from_secs(1);

/// How long each check of `/readyz` may take before it counts as failed.
const CHECK_PATIENCE: Duration = Duration::from_secs(3);

/// What the operator's routes read.
#[derive(Clone)]
pub struct OpsState {
    /// The job store: its reachability, and the job counts of `/metrics`.
    pub jobs: Arc<dyn JobStore>,
    /// The object store, checked by `/readyz`.
    pub storage: Storage,
    /// The registry `/metrics` renders, and the workers' health.
    pub metrics: Arc<Metrics>,
    /// The last readiness answer, and when.
    ready: Arc<Mutex<Option<(Instant, StatusCode, Value)>>>,
}

impl OpsState {
    /// The state over these parts.
    pub fn new(jobs: Arc<dyn JobStore>, storage: Storage, metrics: Arc<Metrics>) -> OpsState {
        OpsState {
            jobs,
            storage,
            metrics,
            ready: Arc::default(),
        }
    }
}

/// `/healthz`, `/readyz` and `/metrics`; no fallback.
pub fn ops_router(state: OpsState) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    super::catch_panics(router)
}

/// 200 while the process answers at all.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// 200 `{"status":"ready","checks":{...}}` when the database takes writes with every migration
/// applied, storage answers, and this process's workers (if any) can claim jobs; 503
/// `{"status":"unready",...}` naming what failed otherwise.
async fn readyz(State(state): State<OpsState>) -> Response {
    let mut cached = state.ready.lock().await;
    if let Some((at, status, body)) = cached.as_ref()
        && at.elapsed() < READY_MAX_AGE
    {
        return (*status, Json(body.clone())).into_response();
    }
    let (status, body) = check_all(&state).await;
    *cached = Some((Instant::now(), status, body.clone()));
    (status, Json(body)).into_response()
}

async fn check_all(state: &OpsState) -> (StatusCode, Value) {
    let database = async {
        match tokio::time::timeout(CHECK_PATIENCE, state.jobs.check_ready(now_ms())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(QueueError::NotMigrated(missing))) => Err(format!(
                "migrations {missing:?} are not applied: run ximagepipeline migrate"
            )),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the database failed");
                Err("unreachable or not taking writes".to_owned())
            }
            Err(_) => Err("did not answer in time".to_owned()),
        }
    };
    let storage = async {
        match tokio::time::timeout(CHECK_PATIENCE, state.storage.check()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: storage failed");
                Err(if e.is_full() { "full" } else { "unreachable" }.to_owned())
            }
            Err(_) => Err("did not answer in time".to_owned()),
        }
    };
    let (database, storage) = tokio::join!(database, storage);
    let health = state.metrics.worker_health();
    let workers = match health {
        h if h.running == 0 => Ok("none in this process"),
        h if h.failing > 0 => Err(format!("{} of {} cannot claim jobs", h.failing, h.running)),
        _ => Ok("ok"),
    };
    let mut checks = Map::new();
    let mut ready = true;
    for (name, result) in [
        ("database", database.map(|()| "ok")),
        ("storage", storage.map(|()| "ok")),
        ("workers", workers),
    ] {
        ready &= result.is_ok();
        let said = match result {
            Ok(fine) => fine.to_owned(),
            Err(wrong) => wrong,
        };
        checks.insert(name.to_owned(), Value::String(said));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if ready { "ready" } else { "unready" };
    (status, json!({ "status": word, "checks": checks }))
}

/// The Prometheus text of every metric; the job counts come from the database at most once
/// per [`crate::metrics::COUNTS_MAX_AGE`] (a failed count leaves those gauges as they were).
async fn metrics(State(state): State<OpsState>) -> Response {
    let counts = match state.metrics.cached_counts() {
        Some(_) => None,
        None => match state.jobs.count_jobs().await {
            Ok(counts) => Some(counts),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: cannot count jobs");
                None
            }
        },
    };
    let text = state.metrics.render(counts, now_ms());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}
