//! Push instead of poll: the status route's `?wait` and its server-sent events, in-process and
//! across processes (a worker in another process ends the job a client waits on).

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use ximagepipeline::JobId;

use crate::backends::PgSchema;
use crate::common::{TestServer, corpus, png};
use crate::processes::Env;

/// Far more than any answer here takes; a wait that hangs fails at it, not at the harness's.
const DEADLINE: Duration = Duration::from_secs(60);

async fn get(server: &TestServer, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let res = server
        .client
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.json().await.unwrap())
}

async fn upload(server: &TestServer) -> String {
    let (status, body) = server.upload(png(64, 48), "avatar", "u1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["jobId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_202_says_when_to_ask_again_and_a_bad_wait_is_refused() {
    let server = TestServer::start().await;
    let job = upload(&server).await;
    let (status, headers, body) = get(&server, &format!("/image-pipeline/status/{job}")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(headers["retry-after"], "1");

    for bad in ["soon", "-1", "NaN", ""] {
        let (status, _, body) =
            get(&server, &format!("/image-pipeline/status/{job}?wait={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "wait={bad}: {body}");
        assert_eq!(body["code"], "INVALID_WAIT");
    }
    // An unknown job is 404 at once, waiting or not.
    let (status, _, body) = get(&server, "/image-pipeline/status/nope?wait=30").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Nothing ends the job: the wait runs out and the answer is the current 202.
    let started = Instant::now();
    let (status, headers, body) =
        get(&server, &format!("/image-pipeline/status/{job}?wait=1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "PENDING");
    assert_eq!(headers["retry-after"], "1");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_waiting_client_is_answered_when_its_job_ends() {
    let server = TestServer::start().await;
    let jobs = [upload(&server).await, upload(&server).await];
    let waiting = futures::future::join_all(jobs.iter().map(|job| {
        let path = format!("/image-pipeline/status/{job}?wait=30");
        let server = &server;
        async move {
            let (status, _, body) = get(server, &path).await;
            (status, body, Instant::now())
        }
    }));
    let ran = async {
        // Both requests are sent before the jobs run (a 202 answer now would be a failure).
        tokio::task::yield_now().await;
        server.drain().await
    };
    let (answers, ran) = tokio::time::timeout(DEADLINE, futures::future::join(waiting, ran))
        .await
        .expect("waiting clients were not answered");
    assert_eq!(ran, 2);
    for (status, body, _) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "COMPLETE");
        assert!(body["media"]["urls"]["sm"].is_string(), "{body}");
    }
    // Ended already: the answer is immediate.
    let started = Instant::now();
    let (status, _, _) = get(
        &server,
        &format!("/image-pipeline/status/{}?wait=30", jobs[0]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The events of one stream, parsed: (event name, JSON data), until the server ends it.
async fn read_events(res: reqwest::Response) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut body = res.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(DEADLINE, body.next())
        .await
        .expect("the stream stalled")
    {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    text.split("\n\n")
        .filter(|block| block.contains("data:"))
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_owned())
                    .unwrap_or_default()
            };
            (
                field("event:"),
                serde_json::from_str(&field("data:")).unwrap(),
            )
        })
        .collect()
}

/// `GET …/status/{job}/events`, answered as far as its headers.
async fn open_events(server: &TestServer, job: &str) -> reqwest::Response {
    let url = format!("{}/image-pipeline/status/{job}/events", server.url);
    server.client.get(url).send().await.unwrap()
}

#[tokio::test]
async fn events_stream_each_status_and_end_after_the_final_one() {
    let server = TestServer::start().await;
    let job = upload(&server).await;
    let res = open_events(&server, &job).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    // The headers came, so the stream is following the job: run it now.
    let (events, _) = futures::future::join(read_events(res), server.drain()).await;
    let statuses: Vec<&str> = events
        .iter()
        .map(|(_, b)| b["status"].as_str().unwrap())
        .collect();
    assert!(
        events
            .iter()
            .all(|(name, b)| name == "status" && b["jobId"] == job.as_str())
    );
    assert_eq!(statuses.first(), Some(&"PENDING"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"COMPLETE"), "{statuses:?}");
    assert!(statuses.len() <= 3, "one event per change: {statuses:?}");
    assert!(events.last().unwrap().1["media"]["urls"]["xs"].is_string());

    // A job already ended: one event, and the stream ends.
    let res = open_events(&server, &job).await;
    let again = read_events(res).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1, events.last().unwrap().1);

    let res = open_events(&server, "nope").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// Uploads `count` photos through an API process and waits on each with `?wait=30` while a
/// worker process runs them, with a webhook receiver configured; returns the milliseconds from
/// COMPLETE recorded to the `?wait` answer, and to the webhook's arrival.
async fn wait_across_processes(backends: &str, count: usize) -> (Vec<i64>, Vec<i64>) {
    let (url, receiver) = crate::webhooks::start_receiver(&[]).await;
    let env = Env::with_backends(&format!("{backends}{}", crate::webhooks::config(&url, "")));
    let api = env.serve("api", true).await;
    let _worker = env.worker("worker");
    let bytes = std::fs::read(corpus("valid/jpeg_gray_concert.jpg")).unwrap();
    let pipeline = env.pipeline().await;
    let mut lags = Vec::new();
    let mut ended = std::collections::HashMap::new();
    for i in 0..count {
        let job = api
            .upload_bytes("concert.jpg", bytes.clone(), "avatar", &format!("w{i}"))
            .await;
        let res = tokio::time::timeout(
            DEADLINE,
            api.client
                .get(format!("{}/image-pipeline/status/{job}?wait=30", api.base))
                .send(),
        )
        .await
        .expect("no answer within the deadline")
        .unwrap();
        let answered = ximagepipeline::queue::now_ms();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "COMPLETE", "{body}");
        let report = pipeline
            .get_status(&JobId::from_string(job))
            .await
            .unwrap()
            .unwrap();
        lags.push(answered - report.job.updated_at);
        ended.insert(report.job.id.to_string(), report.job.updated_at);
    }
    let mut hooks: Vec<i64> = receiver
        .until(count)
        .await
        .iter()
        .map(|r| r.at - ended[r.body["data"]["jobId"].as_str().unwrap()])
        .collect();
    lags.sort_unstable();
    hooks.sort_unstable();
    (lags, hooks)
}

fn report(engine: &str, what: &str, lags: &[i64]) {
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "{engine}: COMPLETE recorded → {what}, {} jobs: median {} ms, p99 {} ms, max {} ms",
        lags.len(),
        at(0.5),
        at(0.99),
        lags[lags.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_on_postgres_wakes_a_client_waiting_on_another() {
    let schema = PgSchema::create().await;
    let backends = format!("database_url = \"{}\"\n", schema.url());
    let (lags, hooks) = wait_across_processes(&backends, 20).await;
    report("PostgreSQL", "?wait answered", &lags);
    report("PostgreSQL", "webhook received", &hooks);
    // Woken by NOTIFY, not by a poll: generous for a loaded machine.
    assert!(lags.iter().all(|&lag| lag < 5_000), "{lags:?}");
    assert!(hooks.iter().all(|&lag| lag < 10_000), "{hooks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_on_sqlite_wakes_a_client_waiting_on_another() {
    let (lags, hooks) = wait_across_processes("", 10).await;
    report("SQLite", "?wait answered", &lags);
    report("SQLite", "webhook received", &hooks);
    assert!(lags.iter().all(|&lag| lag < 5_000), "{lags:?}");
    assert!(hooks.iter().all(|&lag| lag < 10_000), "{hooks:?}");
}
