//! Fairness over real sockets (issue 12): caps on pending jobs per source and per client,
//! 429 `TOO_MANY_PENDING` with `Retry-After` past either, nothing left behind, room again once
//! the jobs ran; `X-Forwarded-For` names the client only when the peer is a trusted proxy.

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use ximagepipeline::JobId;

use crate::common::{TestServer, json, png};

/// Uploads a small PNG for `source_id`, with `forwarded_for` as `X-Forwarded-For` if given.
/// Returns the status, the `Retry-After` header and the body.
async fn upload(
    server: &TestServer,
    source_id: &str,
    forwarded_for: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let form = Form::new()
        .text("sourceType", "avatar")
        .text("sourceId", source_id.to_owned())
        .part("file", Part::bytes(png(8, 8)).file_name("a.png"));
    let mut request = server
        .client
        .post(format!("{}/image-pipeline/upload", server.url))
        .multipart(form);
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    let res = request.send().await.unwrap();
    let retry_after = res
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let (code, body) = json(res).await;
    (code, retry_after, body)
}

#[track_caller]
fn assert_accepted(got: &(StatusCode, Option<String>, Value)) {
    assert_eq!(got.0, StatusCode::ACCEPTED, "{}", got.2);
}

#[track_caller]
fn assert_too_many_pending(got: &(StatusCode, Option<String>, Value)) {
    assert_eq!(got.0, StatusCode::TOO_MANY_REQUESTS, "{}", got.2);
    assert_eq!(
        got.2,
        json!({
            "error": "Too many uploads are waiting to be processed; retry later",
            "code": "TOO_MANY_PENDING"
        })
    );
    let secs: u64 = got.1.as_deref().expect("Retry-After").parse().unwrap();
    assert!(secs >= 1, "{secs}");
}

/// The staging objects in storage: one per accepted upload, none for a refused one.
async fn staged(server: &TestServer) -> usize {
    server
        .stored_keys()
        .await
        .iter()
        .filter(|k| k.starts_with("staging/"))
        .count()
}

async fn client_of(server: &TestServer, upload: &Value) -> Option<String> {
    let id = JobId::from_string(upload["jobId"].as_str().unwrap().to_owned());
    server.admin.jobs().get(&id).await.unwrap().unwrap().client
}

#[tokio::test]
async fn one_source_is_capped_while_others_upload() {
    let server = TestServer::start_with("[fairness]\nmax_pending_per_source = 2").await;
    assert_accepted(&upload(&server, "busy", None).await);
    assert_accepted(&upload(&server, "busy", None).await);
    assert_too_many_pending(&upload(&server, "busy", None).await);
    assert_eq!(staged(&server).await, 2, "the refused upload left nothing");
    assert_accepted(&upload(&server, "quiet", None).await);

    assert_eq!(server.drain().await, 3);
    assert_accepted(&upload(&server, "busy", None).await);
}

#[tokio::test]
async fn one_client_is_capped_across_sources() {
    let server = TestServer::start_with("[fairness]\nmax_pending_per_client = 2").await;
    let first = upload(&server, "s1", None).await;
    assert_accepted(&first);
    assert_eq!(
        client_of(&server, &first.2).await.as_deref(),
        Some("127.0.0.1")
    );
    assert_accepted(&upload(&server, "s2", None).await);
    assert_too_many_pending(&upload(&server, "s3", None).await);
    assert_eq!(staged(&server).await, 2, "the refused upload left nothing");

    assert_eq!(server.drain().await, 2);
    assert_accepted(&upload(&server, "s3", None).await);
}

#[tokio::test]
async fn forwarded_for_names_the_client_behind_a_trusted_proxy() {
    let server = TestServer::start_with(
        "[fairness]\nmax_pending_per_client = 1\ntrusted_proxies = [\"127.0.0.1\"]",
    )
    .await;
    let first = upload(&server, "s1", Some("198.51.100.1")).await;
    assert_accepted(&first);
    assert_eq!(
        client_of(&server, &first.2).await.as_deref(),
        Some("198.51.100.1")
    );
    assert_too_many_pending(&upload(&server, "s2", Some("192.0.2.50, 198.51.100.1")).await);
    assert_accepted(&upload(&server, "s3", Some("198.51.100.2")).await);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = TestServer::start_with(
        "[fairness]\nmax_pending_per_client = 1\ntrusted_proxies = [\"192.0.2.1\"]",
    )
    .await;
    let first = upload(&server, "s1", Some("198.51.100.1")).await;
    assert_accepted(&first);
    assert_eq!(
        client_of(&server, &first.2).await.as_deref(),
        Some("127.0.0.1")
    );
    // A new address in the header does not make a new client.
    assert_too_many_pending(&upload(&server, "s2", Some("198.51.100.2")).await);
}
