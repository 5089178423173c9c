//! Content moderation through the whole service: a real HTTP moderation server in the test
//! (approve, reject, slow, broken, malformed), and the local open_nsfw classifier (feature
//! `nsfw`) against reference scores from onnxruntime.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};
use ximagepipeline::JobId;

use crate::common::{TestServer, corpus_bytes};

/// What the test moderation service answers.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// `{"scores": {"nsfw": s, "violence": 0.01}}`
    Scores(f64),
    /// The provider's own verdict: flagged as nudity with 0.97.
    Flagged,
    /// Sleeps past the client's timeout, then approves.
    Slow,
    /// 500 with a body.
    Broken,
    /// 200 with something that is not a verdict.
    Malformed,
}

/// What the service saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    content_type: Option<String>,
    /// The size of the image sent, or why it did not decode as JPEG.
    image: Result<(u32, u32), String>,
}

#[derive(Clone)]
struct Service {
    replies: Arc<Mutex<Vec<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A moderation service on a random loopback port answering `replies` in turn (the last one
/// repeats). Returns its URL and what it saw.
async fn moderation_service(replies: &[Reply]) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let service = Service {
        replies: Arc::new(Mutex::new(replies.iter().rev().copied().collect())),
        seen: Arc::new(Mutex::new(Vec::new())),
    };
    let seen = Arc::clone(&service.seen);
    let app = axum::Router::new()
        .route("/moderate", axum::routing::post(judge))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/moderate", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn judge(
    State(service): State<Service>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let image = image::load_from_memory_with_format(&body, image::ImageFormat::Jpeg)
        .map(|i| (i.width(), i.height()))
        .map_err(|e| e.to_string());
    service.seen.lock().unwrap().push(Seen {
        authorization: header("authorization"),
        content_type: header("content-type"),
        image,
    });
    let reply = {
        let mut replies = service.replies.lock().unwrap();
        if replies.len() > 1 {
            replies.pop().unwrap()
        } else {
            replies[0]
        }
    };
    match reply {
        Reply::Scores(nsfw) => (
            AxumStatus::OK,
            json!({"scores": {"nsfw": nsfw, "violence": 0.01}}).to_string(),
        ),
        Reply::Flagged => (
            AxumStatus::OK,
            json!({"flagged": true, "flags": ["nudity"], "confidence": 0.97}).to_string(),
        ),
        Reply::Slow => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (AxumStatus::OK, json!({"flagged": false}).to_string())
        }
        Reply::Broken => (
            AxumStatus::INTERNAL_SERVER_ERROR,
            "model server down".to_owned(),
        ),
        Reply::Malformed => (AxumStatus::OK, "{\"verdict\": \"fine\"}".to_owned()),
    }
}

/// A server moderating `avatar` through `url`, with `extra` TOML lines in `[moderation]`.
async fn server(url: &str, max_attempts: u32, extra: &str) -> TestServer {
    TestServer::start_with(&format!(
        "[worker]\nmax_attempts = {max_attempts}\nretry_base_delay_secs = 0\n\
         [moderation]\nprovider = \"http\"\nsource_types = [\"avatar\"]\n{extra}\n\
         [moderation.http]\nurl = \"{url}\"\ntimeout_secs = 0.5\nbearer_token = \"s3cret\"\n\
         image_side = 256\n"
    ))
    .await
}

/// Uploads a corpus photo as `source_type`, runs the queue, returns (status code, body, job).
async fn run(server: &TestServer, source_type: &str) -> (StatusCode, Value, JobId) {
    let (code, body) = server
        .upload(corpus_bytes("photos/kodim03.png"), source_type, "user-1")
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let job = body["jobId"].as_str().unwrap().to_owned();
    server.drain().await;
    let (code, body) = server.get(&format!("/image-pipeline/status/{job}")).await;
    (code, body, JobId::from_string(job))
}

async fn moderation_result(server: &TestServer, job: &JobId) -> (Option<String>, Option<Value>) {
    let job = server.admin.jobs().get(job).await.unwrap().unwrap();
    (job.moderation_result, job.moderation_details)
}

#[tokio::test]
async fn approved_images_complete_and_the_verdict_is_recorded() {
    let (url, seen) = moderation_service(&[Reply::Scores(0.12)]).await;
    let server = server(&url, 3, "").await;
    let (code, body, job) = run(&server, "avatar").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (result, details) = moderation_result(&server, &job).await;
    assert_eq!(result.as_deref(), Some("APPROVED"));
    let details = details.unwrap();
    assert_eq!(details["flags"], json!([]));
    assert_eq!(details["provider"], "http");
    assert!((details["scores"]["nsfw"].as_f64().unwrap() - 0.12).abs() < 1e-6);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one request per image");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer s3cret"));
    assert_eq!(seen[0].content_type.as_deref(), Some("image/jpeg"));
    let (w, h) = seen[0].image.clone().unwrap();
    assert!(
        w == 256 && (170..=171).contains(&h),
        "the upright copy, at most image_side a side: {w}×{h}"
    );
}

#[tokio::test]
async fn flagged_images_are_rejected_with_the_contract_body_and_nothing_stored() {
    let (url, _) = moderation_service(&[Reply::Flagged]).await;
    let server = server(&url, 3, "").await;
    let (code, body, job) = run(&server, "avatar").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        json!({
            "jobId": job.as_str(),
            "status": "REJECTED",
            "reason": "Content moderation failed",
            "moderationDetails": {
                "flags": ["nudity"],
                "confidence": 0.97,
                "provider": "http",
                "scores": {},
            },
        })
    );
    assert_eq!(
        server.stored_keys().await,
        Vec::<String>::new(),
        "no variant, no original, no staging object"
    );
    let (code, list) = server
        .get("/image-pipeline/media?sourceType=avatar&sourceId=user-1")
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["media"], json!([]), "no media row");
    assert_eq!(
        moderation_result(&server, &job).await.0.as_deref(),
        Some("REJECTED")
    );
}

#[tokio::test]
async fn scores_are_judged_against_the_thresholds_per_flag() {
    let (url, _) = moderation_service(&[Reply::Scores(0.55)]).await;
    let lenient = server(&url, 1, "").await;
    let (code, body, _) = run(&lenient, "avatar").await;
    assert_eq!(code, StatusCode::OK, "0.55 < the default 0.8: {body}");

    let strict = server(&url, 1, "[moderation.thresholds]\nnsfw = 0.5").await;
    let (code, body, _) = run(&strict, "avatar").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["moderationDetails"]["flags"], json!(["nsfw"]));
    assert!((body["moderationDetails"]["confidence"].as_f64().unwrap() - 0.55).abs() < 1e-6);
}

#[tokio::test]
async fn source_types_without_moderation_are_not_sent() {
    let (url, seen) = moderation_service(&[Reply::Flagged]).await;
    let server = server(&url, 3, "").await;
    let (code, body, job) = run(&server, "gallery").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(moderation_result(&server, &job).await.0, None);
}

#[tokio::test]
async fn a_failing_provider_is_retried_then_fails_closed() {
    for (reply, words) in [
        (Reply::Slow, "timed out"),
        (Reply::Broken, "HTTP 500: model server down"),
        (Reply::Malformed, "unreadable reply"),
    ] {
        let (url, seen) = moderation_service(&[reply]).await;
        let server = server(&url, 2, "").await;
        let (code, body, _) = run(&server, "avatar").await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{reply:?}: {body}");
        assert_eq!(body["attempts"], 2, "{reply:?}: retried: {body}");
        // The provider's own words (and its address) go to the logs, not to the client.
        server.assert_failed_safely(&body, "MODERATION_UNAVAILABLE");
        let error = body["error"].as_str().unwrap();
        assert!(!error.contains(words), "{reply:?}: {error}");
        assert_eq!(seen.lock().unwrap().len(), 2);
        // A provider that may come back: the upload stays for an operator's requeue.
        let staged = format!("staging/{}", body["jobId"].as_str().unwrap());
        assert_eq!(server.stored_keys().await, [staged], "{reply:?}");
    }
}

#[tokio::test]
async fn a_provider_back_on_the_retry_approves() {
    let (url, _) = moderation_service(&[Reply::Broken, Reply::Scores(0.01)]).await;
    let server = server(&url, 3, "").await;
    let (code, body, job) = run(&server, "avatar").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let job = server.admin.jobs().get(&job).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
}

#[tokio::test]
async fn fail_open_approves_after_the_last_attempt() {
    let (url, _) = moderation_service(&[Reply::Broken]).await;
    let server = server(&url, 2, "fail_open = true").await;
    let (code, body, job) = run(&server, "avatar").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (result, details) = moderation_result(&server, &job).await;
    assert_eq!(result.as_deref(), Some("APPROVED"));
    assert_eq!(details.unwrap()["failOpen"], true);
}

#[cfg(feature = "nsfw")]
mod local {
    //! The open_nsfw classifier on tract. Needs the model: `scripts/fetch-model` (run by
    //! `scripts/test`) puts it at `models/open-nsfw.onnx`.

    use std::path::PathBuf;

    use reqwest::StatusCode;
    use ximagepipeline::moderation::nsfw::NsfwModerator;
    use ximagepipeline::{Config, ImagePipeline, pipeline};

    use crate::common::{TestServer, corpus, corpus_bytes};

    fn model() -> PathBuf {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/models/open-nsfw.onnx"
        ));
        assert!(
            path.exists(),
            "{} is missing: run scripts/fetch-model",
            path.display()
        );
        path
    }

    fn nsfw_score(moderator: &NsfwModerator, photo: &str) -> f64 {
        let limits = Config::embedded("unused").unwrap().limits;
        let prepared = pipeline::prepare(&corpus_bytes(photo), &limits).unwrap();
        let thumbnail = prepared.thumbnail(NsfwModerator::IMAGE_SIDE).unwrap();
        moderator.score(&thumbnail).unwrap()
    }

    /// tract's scores equal onnxruntime's on the same preprocessed input
    /// (`scripts/moderation-reference`), to float rounding: within 1 % (the scores of safe
    /// photos are small, so an absolute tolerance would let a classifier that says 0 pass).
    #[test]
    fn scores_match_the_onnxruntime_reference() {
        let moderator = NsfwModerator::load(&model()).unwrap();
        let reference = include_str!("../data/nsfw_reference.tsv");
        let mut compared = 0;
        for line in reference.lines().filter(|l| !l.starts_with('#')) {
            let (photo, expected) = line.split_once('\t').unwrap();
            let expected: f64 = expected.parse().unwrap();
            let got = nsfw_score(&moderator, photo);
            assert!(
                (got - expected).abs() <= 1e-6 + 0.01 * expected,
                "{photo}: tract {got}, onnxruntime {expected}"
            );
            compared += 1;
        }
        assert!(compared >= 3, "the reference file lists too few photos");
    }

    /// Every corpus photo the default build reads is approved at the default threshold.
    #[test]
    fn corpus_photos_are_approved_at_the_default_threshold() {
        let moderator = NsfwModerator::load(&model()).unwrap();
        let limits = Config::embedded("unused").unwrap().limits;
        for entry in std::fs::read_dir(corpus("photos")).unwrap() {
            let path = entry.unwrap().path();
            let Ok(prepared) = pipeline::prepare(&std::fs::read(&path).unwrap(), &limits) else {
                continue; // HEIC/AVIF without the heif feature
            };
            let score = moderator
                .score(&prepared.thumbnail(NsfwModerator::IMAGE_SIDE).unwrap())
                .unwrap();
            assert!(score < 0.8, "{}: nsfw {score}", path.display());
        }
    }

    /// Through the service: approved at the default threshold; rejected once the threshold is
    /// set below the photo's own score.
    #[tokio::test]
    async fn the_service_rejects_what_scores_above_the_threshold() {
        let moderator = NsfwModerator::load(&model()).unwrap();
        let photo = "photos/kodim04.png";
        let score = nsfw_score(&moderator, photo);
        let config = |threshold: f64| {
            format!(
                "[moderation]\nprovider = \"local\"\nsource_types = [\"avatar\"]\n\
                 [moderation.thresholds]\nnsfw = {threshold}\n\
                 [moderation.local]\nmodel = \"{}\"\n",
                model().display()
            )
        };
        for (threshold, expected) in [
            (0.8, StatusCode::OK),
            (score * 0.9, StatusCode::BAD_REQUEST),
        ] {
            let server = TestServer::start_with(&config(threshold)).await;
            let (_, body) = server.upload(corpus_bytes(photo), "avatar", "u1").await;
            server.drain().await;
            let job = body["jobId"].as_str().unwrap();
            let (code, body) = server.get(&format!("/image-pipeline/status/{job}")).await;
            assert_eq!(
                code, expected,
                "threshold {threshold}, score {score}: {body}"
            );
            if code == StatusCode::BAD_REQUEST {
                assert_eq!(body["moderationDetails"]["provider"], "open_nsfw");
                assert_eq!(
                    body["moderationDetails"]["flags"],
                    serde_json::json!(["nsfw"])
                );
            }
        }
    }

    /// A missing or wrong model file stops start-up with a message that says what to do.
    #[tokio::test]
    async fn a_missing_or_wrong_model_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let wrong = dir.path().join("wrong.onnx");
        std::fs::write(&wrong, b"not a model").unwrap();
        for (path, words) in [
            (dir.path().join("missing.onnx"), "fetch-model"),
            (wrong, "sha256"),
        ] {
            let file = dir.path().join("c.toml");
            std::fs::write(
                &file,
                format!(
                    "[moderation]\nprovider = \"local\"\nsource_types = [\"avatar\"]\n\
                     [moderation.local]\nmodel = \"{}\"\n",
                    path.display()
                ),
            )
            .unwrap();
            let mut flags = toml::Table::new();
            flags.insert(
                "data_dir".into(),
                dir.path().join("d").display().to_string().into(),
            );
            let config = Config::load(Some(&file), std::iter::empty(), flags).unwrap();
            let err = ImagePipeline::open(config).await.err().expect("must fail");
            assert!(err.to_string().contains(words), "{err}");
        }
    }
}
