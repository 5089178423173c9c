//! `GET /image-pipeline/status/:jobId` in every state, and the worker's outcomes behind them.

use reqwest::StatusCode;
use serde_json::json;
use ximagepipeline::queue::now_ms;

use crate::common::{TestServer, corpus_bytes, png, webp_size};

#[tokio::test]
async fn unknown_job_is_404() {
    let server = TestServer::start().await;
    let got = server.get("/image-pipeline/status/nope").await;
    assert_eq!(
        got,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Job not found", "code": "JOB_NOT_FOUND"})
        )
    );
}

#[tokio::test]
async fn processing_job_is_202() {
    let server = TestServer::start().await;
    let (_, body) = server.upload(png(16, 16), "avatar", "u1").await;
    let job = server
        .admin
        .jobs()
        .claim("w", now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id.as_str(), body["jobId"]);
    let got = server
        .get(&format!("/image-pipeline/status/{}", job.id))
        .await;
    assert_eq!(
        got,
        (
            StatusCode::ACCEPTED,
            json!({"jobId": job.id.as_str(), "status": "PROCESSING"})
        )
    );
}

#[tokio::test]
async fn complete_job_has_media_with_absolute_urls_and_sizes() {
    let server = TestServer::start().await;
    // 1200×800 → 3:2; gallery makes md (640 wide) and keeps lg/xl at the image's own size.
    let (code, body) = server.process(png(1200, 800), "gallery").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    let media = &body["media"];
    assert!(media["id"].as_str().unwrap().starts_with("med_"));
    assert_eq!(media["sourceType"], "gallery");
    assert_eq!(media["sourceId"], "it-1");
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64()),
        (Some(1200), Some(800))
    );
    assert_eq!(media["aspectRatio"], "3:2");
    assert_eq!(
        media["blurhash"].as_str().unwrap().len(),
        28,
        "4×3 components give 28 characters"
    );
    let expected = [("md", 640, 427), ("lg", 1200, 800), ("xl", 1200, 800)];
    let urls = media["urls"].as_object().unwrap();
    assert_eq!(urls.len(), expected.len());
    for (name, w, h) in expected {
        let url = urls[name].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/files/media/gallery/it-1/", server.url)),
            "{url}"
        );
        let bytes = server.fetch(url).await;
        assert_eq!(webp_size(&bytes), (w, h), "{name}");
    }
    let original = media["originalUrl"].as_str().unwrap();
    assert!(original.ends_with("/original.png"), "{original}");
    let bytes = server.fetch(original).await;
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1200, 800));
    // The staging object is gone; only the media's objects remain.
    let keys = server.stored_keys().await;
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert!(keys.iter().all(|k| !k.starts_with("staging/")), "{keys:?}");
}

#[tokio::test]
async fn undecodable_upload_fails_at_once_with_a_reason() {
    let server = TestServer::start().await;
    let (code, body) = server
        .process(corpus_bytes("invalid/truncated_40pct.jpg"), "avatar")
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["status"], "FAILED");
    assert_eq!(body["attempts"], 1, "a permanent failure is not retried");
    server.assert_failed_safely(&body, "UNREADABLE_IMAGE");
    assert!(
        body["error"].as_str().unwrap().contains("truncated"),
        "{body}"
    );
    assert_eq!(
        server.stored_keys().await,
        Vec::<String>::new(),
        "staging removed"
    );
}

/// Makes the local store refuse writes of results: a plain file where the media folder goes.
fn break_media_folder(server: &TestServer) -> std::path::PathBuf {
    let media = server.dir.path().join("data/objects/media");
    std::fs::write(&media, b"x").unwrap();
    media
}

/// Storage refusing writes is an outage (API.md §4): the job is deferred without using an
/// attempt, however often it meets it within the transient window.
#[tokio::test]
async fn a_storage_outage_uses_no_attempt() {
    let server = TestServer::start_with("[worker]\nmax_attempts = 1").await;
    let (_, body) = server.upload(png(64, 64), "avatar", "u1").await;
    break_media_folder(&server);
    assert_eq!(server.drain().await, 1, "one run, then deferred");
    let (code, status) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{status}");
    assert_eq!(status["status"], "PENDING", "{status}");
    let id = ximagepipeline::JobId::from_string(status["jobId"].as_str().unwrap().to_owned());
    let job = server.admin.jobs().get(&id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 0, "the outage used no attempt: {job:?}");
    assert!(job.outage_since.is_some(), "{job:?}");
}

/// Past the transient window (0 s here) the job ends FAILED `STORAGE_UNAVAILABLE` with its
/// upload kept; once the store is mended, the operator's requeue completes it.
#[tokio::test]
async fn a_storage_outage_past_the_window_fails_keeping_the_upload() {
    let server = TestServer::start_with("[worker]\ntransient_window_secs = 0").await;
    let (_, body) = server.upload(png(64, 64), "avatar", "u1").await;
    let job = body["jobId"].as_str().unwrap();
    let media = break_media_folder(&server);
    assert_eq!(server.drain().await, 1);
    let (code, status) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    // Issue 12: the storage error held the absolute path of the media folder.
    server.assert_failed_safely(&status, "STORAGE_UNAVAILABLE");
    // The upload stays; nothing of the failed attempt does ("media" is the file in the way).
    let staged = format!("staging/{job}");
    assert_eq!(server.stored_keys().await, ["media", staged.as_str()]);

    std::fs::remove_file(media).unwrap();
    let id = ximagepipeline::JobId::from_string(job.to_owned());
    server.pipeline.requeue(&id).await.unwrap();
    server.drain().await;
    let (code, status) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(status["status"], "COMPLETE", "{status}");
}

#[tokio::test]
async fn transient_failure_then_recovery_completes_once() {
    let server = TestServer::start_with("[worker]\nretry_base_delay_secs = 0").await;
    let (_, body) = server.upload(png(64, 64), "avatar", "u1").await;
    let job = body["jobId"].as_str().unwrap();
    let blocker = server.dir.path().join("data/objects/media");
    std::fs::write(&blocker, b"x").unwrap();
    let claimed = server
        .admin
        .jobs()
        .claim("w1", now_ms())
        .await
        .unwrap()
        .unwrap();
    server.admin.run_claimed_job("w1", claimed).await;
    let (code, body) = server.get(&format!("/image-pipeline/status/{job}")).await;
    assert_eq!(
        (code, &body["status"]),
        (StatusCode::ACCEPTED, &json!("PENDING")),
        "{body}"
    );
    std::fs::remove_file(&blocker).unwrap();
    assert_eq!(server.drain().await, 1);
    let (code, body) = server.get(&format!("/image-pipeline/status/{job}")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let listed = server
        .get("/image-pipeline/media?sourceType=avatar&sourceId=u1")
        .await
        .1;
    assert_eq!(listed["media"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn image_work_over_the_time_limit_fails_with_the_reason() {
    // No real photo decodes, resizes and encodes in a millisecond.
    let server = TestServer::start_with("[worker]\njob_timeout_secs = 0.001").await;
    let photo = corpus_bytes("photos/hato_6.3mp.jpg");
    let (code, body) = server.process(photo, "gallery").await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["attempts"], 1, "a timeout is not retried");
    server.assert_failed_safely(&body, "TIMED_OUT");
    assert_eq!(
        body["error"], "processing took longer than the 0.001 s limit",
        "{body}"
    );
}

/// Failures only a worker meets (the intake refuses these bytes at upload): each FAILED body
/// carries its code and a sentence without decoder text, paths or debug output (issue 12).
#[tokio::test]
async fn failed_jobs_carry_a_code_and_nothing_internal() {
    let server = TestServer::start().await;
    let cases = [
        ("invalid/truncated_40pct.jpg", "UNREADABLE_IMAGE"),
        ("invalid/corrupt_header.jpg", "UNREADABLE_IMAGE"),
        ("invalid/png_xdtn0g01.png", "UNREADABLE_IMAGE"),
        ("invalid/polyglot_gif_php.gif", "UNREADABLE_IMAGE"),
        ("invalid/png_xd0n2c08.png", "UNREADABLE_IMAGE"),
        ("invalid/text_renamed.jpg", "UNREADABLE_IMAGE"),
        (
            "invalid/bomb_png_100000x100000_header_only.png",
            "TOO_MANY_PIXELS",
        ),
        ("invalid/svg_plain_check.svg", "UNSUPPORTED_IMAGE"),
    ];
    for (path, code) in cases {
        let job = server.queue_unchecked(corpus_bytes(path), "avatar").await;
        assert_eq!(server.drain().await, 1, "{path}");
        let (status, body) = server.get(&format!("/image-pipeline/status/{job}")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
        server.assert_failed_safely(&body, code);
    }
}

/// The staged upload vanished before its worker read it: the job fails for good with the
/// storage code, and the body does not name the staging key.
#[tokio::test]
async fn a_lost_upload_fails_with_the_storage_code() {
    let server = TestServer::start().await;
    let (_, body) = server.upload(png(16, 16), "avatar", "u1").await;
    let job = body["jobId"].as_str().unwrap();
    std::fs::remove_file(
        server
            .dir
            .path()
            .join(format!("data/objects/staging/{job}")),
    )
    .unwrap();
    assert_eq!(server.drain().await, 1);
    let (code, body) = server.status_of(&body).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["attempts"], 1, "{body}");
    server.assert_failed_safely(&body, "STORAGE_UNAVAILABLE");
    assert!(!body["error"].as_str().unwrap().contains(job), "{body}");
}
