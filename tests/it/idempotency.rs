//! `Idempotency-Key` on uploads: a repeat within the window gets the first upload's 202 and
//! stores nothing; the same key for another source or file is 422; a refused upload does not
//! use its key up; concurrent repeats, also through two API servers on one PostgreSQL, make
//! exactly one job; keys are the caller's own.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::backends::PgSchema;
use crate::common::{TestServer, png};

/// Sends an upload with `key` (and `bearer`, if any): status, whether it was a replay, body.
async fn upload(
    server: &TestServer,
    key: &str,
    source_id: &str,
    bytes: Vec<u8>,
    bearer: Option<&str>,
) -> (StatusCode, bool, Value) {
    let form = Form::new()
        .text("sourceType", "avatar")
        .text("sourceId", source_id.to_owned())
        .part("file", Part::bytes(bytes).file_name("a.png"));
    let mut request = server
        .client
        .post(format!("{}/image-pipeline/upload", server.url))
        .header("idempotency-key", key)
        .multipart(form);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let res = request.send().await.unwrap();
    let status = res.status();
    let replayed = match res.headers().get("idempotent-replayed") {
        Some(v) => {
            assert_eq!(v, "true");
            true
        }
        None => false,
    };
    (status, replayed, res.json().await.unwrap())
}

async fn job_count(server: &TestServer) -> usize {
    server
        .admin
        .jobs()
        .list_jobs(None, 1000)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_repeat_gets_the_first_answer_and_stores_nothing() {
    let server = TestServer::start().await;
    let (status, replayed, first) = upload(&server, "order-1", "u1", png(40, 30), None).await;
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, false), "{first}");
    let staged = server.stored_keys().await;

    let (status, replayed, again) = upload(&server, "order-1", "u1", png(40, 30), None).await;
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, true), "{again}");
    assert_eq!(again, first, "the same body, the same job");
    assert_eq!(job_count(&server).await, 1);
    assert_eq!(
        server.stored_keys().await,
        staged,
        "the repeat's bytes were not kept"
    );

    // The same key for another source or another file is refused, and writes nothing.
    for (source_id, bytes) in [("u2", png(40, 30)), ("u1", png(41, 30))] {
        let (status, _, body) = upload(&server, "order-1", source_id, bytes, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["code"], "IDEMPOTENCY_KEY_REUSED");
    }
    assert_eq!(job_count(&server).await, 1);
    assert_eq!(server.stored_keys().await, staged);

    // A malformed key is refused before the body is read.
    for bad in ["", &"k".repeat(256), "two words"] {
        let (status, _, body) = upload(&server, bad, "u1", png(8, 8), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert_eq!(body["code"], "INVALID_IDEMPOTENCY_KEY");
    }
}

#[tokio::test]
async fn a_refused_upload_does_not_use_up_its_key() {
    let server = TestServer::start_with("[fairness]\nmax_pending_per_source = 1\n").await;
    let (status, _, body) = upload(&server, "k1", "u1", b"not an image".to_vec(), None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (status, replayed, body) = upload(&server, "k1", "u1", png(16, 16), None).await;
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, false), "{body}");

    // Refused by the pending cap: the key stays free for when there is room.
    let (status, _, body) = upload(&server, "k2", "u1", png(17, 17), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    server.drain().await;
    let (status, replayed, body) = upload(&server, "k2", "u1", png(17, 17), None).await;
    assert_eq!((status, replayed), (StatusCode::ACCEPTED, false), "{body}");
}

/// `count` identical uploads at once, spread over `servers`: every answer is a 202 for one and
/// the same job, exactly one of them not a replay, and one job exists.
async fn concurrent_repeats_make_one_job(servers: &[&TestServer], count: usize) {
    let bytes = png(64, 64);
    let answers = futures::future::join_all((0..count).map(|i| {
        let server = servers[i % servers.len()];
        upload(server, "same-upload", "u1", bytes.clone(), None)
    }))
    .await;
    let jobs: BTreeSet<String> = answers
        .iter()
        .map(|(status, _, body)| {
            assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
            body["jobId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let firsts = answers.iter().filter(|(_, replayed, _)| !replayed).count();
    assert_eq!(firsts, 1);
    assert_eq!(job_count(servers[0]).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_repeats_make_one_job_on_sqlite() {
    let server = TestServer::start().await;
    concurrent_repeats_make_one_job(&[&server], 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_repeats_through_two_servers_make_one_job_on_postgres() {
    let pg = PgSchema::create().await;
    let config = format!("database_url = \"{}\"\n", pg.url());
    let (a, b) = (
        TestServer::start_with(&config).await,
        TestServer::start_with(&config).await,
    );
    concurrent_repeats_make_one_job(&[&a, &b], 50).await;
}

#[tokio::test]
async fn keys_are_the_callers_own() {
    let sha = |key: &str| hex::encode(Sha256::digest(key.as_bytes()));
    let (one, two) = (
        "xip_first_caller_key_0123456789",
        "xip_second_caller_key_012345678",
    );
    let server = TestServer::start_with(&format!(
        "[auth]\n\
         [[auth.keys]]\nname = \"one\"\nsha256 = \"{}\"\nscopes = [\"upload\"]\n\
         [[auth.keys]]\nname = \"two\"\nsha256 = \"{}\"\nscopes = [\"upload\"]\n",
        sha(one),
        sha(two)
    ))
    .await;
    let (_, replayed_one, first) = upload(&server, "k", "u1", png(9, 9), Some(one)).await;
    let (_, replayed_two, second) = upload(&server, "k", "u1", png(9, 9), Some(two)).await;
    assert!(!replayed_one && !replayed_two);
    assert_ne!(first["jobId"], second["jobId"]);
    let (_, replayed, again) = upload(&server, "k", "u1", png(9, 9), Some(one)).await;
    assert!(replayed);
    assert_eq!(again["jobId"], first["jobId"]);
}
