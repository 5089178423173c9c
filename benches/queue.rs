//! Claim latency and queue throughput under contention, SQLite and PostgreSQL side by side.
//!
//! `cargo bench --bench queue` (PostgreSQL from `XIMAGEPIPELINE_TEST_POSTGRES_URL`, default the machine's
//! server; a schema of its own, dropped afterwards). Each run queues `JOBS` jobs, then `CLAIMERS`
//! tasks claim and complete them until none is left, as workers do without the image work.
//! Prints the latency of each claim statement (median, p99, max) and jobs per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use ximagepipeline::config::DatabaseConfig;
use ximagepipeline::queue::{self, JobStore, Media, NewJob, now_ms};
use ximagepipeline::{JobId, MediaId};

const JOBS: usize = 2_000;
const CLAIMERS: usize = 8;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    run("SQLite", &sqlite).await;

    let base = std::env::var("XIMAGEPIPELINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("xip_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&base).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    run(
        "PostgreSQL",
        &format!("{base}{sep}options=-csearch_path%3D{schema}"),
    )
    .await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
}

async fn run(name: &str, url: &str) {
    let mut config = DatabaseConfig::from_url(url).unwrap();
    config.max_connections = CLAIMERS as u32 + 2;
    let store = queue::connect(&config).await.unwrap();
    for n in 0..JOBS {
        store.insert(new_job(n), now_ms()).await.unwrap();
    }
    let started = Instant::now();
    let claimers = (0..CLAIMERS).map(|c| tokio::spawn(claim_all(Arc::clone(&store), c)));
    let mut latencies: Vec<Duration> = Vec::new();
    for claimer in claimers {
        latencies.extend(claimer.await.unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(latencies.len(), JOBS, "every job claimed exactly once");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<10} {JOBS} jobs, {CLAIMERS} claimers: claim median {:.2} ms, p99 {:.2} ms, \
         max {:.2} ms; {:.0} jobs/s (claim + complete)",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
        JOBS as f64 / elapsed.as_secs_f64()
    );
}

/// Claims and completes jobs until the queue is empty; returns each claim's latency.
async fn claim_all(store: Arc<dyn JobStore>, claimer: usize) -> Vec<Duration> {
    let worker = format!("bench-{claimer}");
    let mut latencies = Vec::new();
    loop {
        let asked = Instant::now();
        let Some(job) = store.claim(&worker, now_ms()).await.unwrap() else {
            return latencies;
        };
        latencies.push(asked.elapsed());
        let media = Media {
            id: MediaId::generate(),
            job_id: job.id.clone(),
            source_type: job.source_type.clone(),
            source_id: job.source_id.clone(),
            variants: Vec::new(),
            original_key: None,
            width: 1,
            height: 1,
            aspect_ratio: "1:1".into(),
            blurhash: String::new(),
            format: "png".into(),
            created_at: now_ms(),
        };
        assert!(
            store
                .complete(&job.id, &worker, &media, now_ms())
                .await
                .unwrap()
        );
    }
}

fn new_job(n: usize) -> NewJob {
    let id = JobId::generate();
    NewJob {
        staging_key: format!("staging/{id}"),
        id,
        source_type: "avatar".into(),
        source_id: format!("user-{n}"),
        original_filename: None,
        mime_type: "image/png".into(),
        file_size: 100,
        max_attempts: 3,
        client: None,
        token_id: None,
        request_id: None,
        trace_parent: None,
        webhook_url: None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
