//! The operator's routes: `/healthz`, `/readyz` naming what cannot work (storage, database,
//! migrations), `/metrics` whose numbers move with the work done, and the request id that
//! follows an upload from the API into its job.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::backends::{PrivatePostgres, PrivateS3};
use crate::common::{TestServer, corpus_bytes, json, png};

/// How long a readiness change may take to show (answers are reused for a second).
const DEADLINE: Duration = Duration::from_secs(30);

/// `/readyz` until it answers `status`, failing past [`DEADLINE`]; returns its body.
async fn readyz_until(server: &TestServer, status: StatusCode) -> Value {
    let started = Instant::now();
    loop {
        let (got, body) = server.get("/readyz").await;
        if got == status {
            return body;
        }
        assert!(started.elapsed() < DEADLINE, "readyz stayed {got}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the sample `name{labels}` in a scrape; a series missing fails the test.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no {series} in the scrape:\n{scrape}"))
}

async fn scrape(server: &TestServer) -> String {
    let answer = server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let kind = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    answer.text().await.unwrap()
}

#[tokio::test]
async fn health_and_readiness_of_a_working_server() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/healthz").await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &"ok".into()));
    let body = readyz_until(&server, StatusCode::OK).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["storage"], "ok");
    assert_eq!(
        body["checks"]["workers"], "none in this process",
        "the test server runs no worker loops"
    );
}

#[tokio::test]
async fn readiness_names_an_unreachable_store_until_it_is_back() {
    let mut s3 = PrivateS3::start();
    let server = TestServer::start_with(&s3.config()).await;
    readyz_until(&server, StatusCode::OK).await;
    s3.stop();
    let body = readyz_until(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["status"], "unready");
    assert_eq!(body["checks"]["storage"], "unreachable");
    assert_eq!(body["checks"]["database"], "ok");
    assert!(!body.to_string().contains("127.0.0.1"), "no hosts: {body}");
    s3.restart();
    readyz_until(&server, StatusCode::OK).await;
    // Health is only the process: it stayed up all along.
    assert_eq!(server.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn readiness_names_a_database_that_is_down_or_behind() {
    let pg = PrivatePostgres::start();
    let server = TestServer::start_with(&format!("database_url = \"{}\"\n", pg.url())).await;
    readyz_until(&server, StatusCode::OK).await;
    pg.stop();
    let body = readyz_until(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        body["checks"]["database"],
        "unreachable or not taking writes"
    );
    pg.start_again();
    readyz_until(&server, StatusCode::OK).await;

    // A migration missing (a newer build's schema rolled back, say) is named with its fix.
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 6")
        .execute(&pool)
        .await
        .unwrap();
    let body = readyz_until(&server, StatusCode::SERVICE_UNAVAILABLE).await;
    let said = body["checks"]["database"].as_str().unwrap();
    assert!(
        said.contains("[6]") && said.contains("ximagepipeline migrate"),
        "{said}"
    );
}

#[tokio::test]
async fn metrics_move_with_the_work_done() {
    // No scrape before the work: the job counts of a scrape are reused for five seconds.
    let server = TestServer::start().await;

    let good = [png(64, 48), corpus_bytes("valid/jpeg_gray_concert.jpg")];
    let mut sent = 0;
    for bytes in &good {
        sent += bytes.len();
        let (status, body) = server.upload(bytes.clone(), "gallery", "u1").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, _) = server
        .upload(b"not an image".to_vec(), "gallery", "u1")
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A job the intake would refuse, queued directly: it ends FAILED with its code.
    server
        .queue_unchecked(corpus_bytes("invalid/truncated_40pct.jpg"), "gallery")
        .await;
    server.drain().await;

    let after = scrape(&server).await;
    assert_eq!(
        sample(&after, "ximagepipeline_upload_bytes_total"),
        sent as f64
    );
    assert_eq!(
        sample(
            &after,
            "ximagepipeline_jobs_finished_total{outcome=\"COMPLETE\",code=\"\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            "ximagepipeline_jobs_finished_total{outcome=\"FAILED\",code=\"UNREADABLE_IMAGE\"}"
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "ximagepipeline_jobs{state=\"COMPLETE\"}"),
        2.0
    );
    assert_eq!(
        sample(&after, "ximagepipeline_jobs{state=\"PENDING\"}"),
        0.0
    );
    for stage in ["probe", "decode", "resize", "encode", "strip", "store"] {
        let count = sample(
            &after,
            &format!("ximagepipeline_stage_seconds_count{{stage=\"{stage}\"}}"),
        );
        assert!(count >= 2.0, "{stage}: {count}");
    }
    assert!(sample(&after, "ximagepipeline_stored_bytes_total") > 0.0);
    let uploads = "ximagepipeline_http_requests_total{route=\"/image-pipeline/upload\",method=\"POST\",status=\"202\"}";
    assert_eq!(sample(&after, uploads), 2.0);
    let refused = "ximagepipeline_http_requests_total{route=\"/image-pipeline/upload\",method=\"POST\",status=\"415\"}";
    assert_eq!(sample(&after, refused), 1.0);
    assert_eq!(sample(&after, "ximagepipeline_workers_busy"), 0.0);
}

#[tokio::test]
async fn an_uploads_request_id_is_returned_and_kept_on_its_job() {
    let server = TestServer::start().await;
    let upload = |id: Option<&str>| {
        let form = Form::new()
            .text("sourceType", "avatar")
            .text("sourceId", "u1")
            .part("file", Part::bytes(png(8, 8)).file_name("a.png"));
        let mut request = server
            .client
            .post(format!("{}/image-pipeline/upload", server.url))
            .multipart(form);
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        async move { request.send().await.unwrap() }
    };
    for (sent, kept) in [
        (Some("checkout-7f3a.2"), true),
        (Some("bad id with spaces"), false),
        (None, false),
    ] {
        let answer = upload(sent).await;
        let returned = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(returned == sent.unwrap_or_default(), kept, "{returned}");
        assert!(!returned.is_empty());
        let (_, body) = json(answer).await;
        let job_id = ximagepipeline::JobId::from_string(body["jobId"].as_str().unwrap());
        let job = server.admin.jobs().get(&job_id).await.unwrap().unwrap();
        assert_eq!(job.request_id.as_deref(), Some(returned.as_str()));
    }
}
