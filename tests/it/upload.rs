//! `POST /image-pipeline/upload`: every accepted and refused case of the contract, and that a
//! refused upload leaves nothing behind (no staging object, no job row).

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::common::{TestServer, corpus_bytes, png};

async fn job_count(server: &TestServer) -> i64 {
    let url = format!(
        "sqlite://{}",
        server.dir.path().join("data/ximagepipeline.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap()
}

#[track_caller]
fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str, message: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert_eq!(got.1["error"], message, "{}", got.1);
}

async fn assert_nothing_left(server: &TestServer) {
    assert_eq!(server.stored_keys().await, Vec::<String>::new());
    assert_eq!(job_count(server).await, 0);
}

#[tokio::test]
async fn accepted_upload_answers_202_with_job_and_location() {
    let server = TestServer::start().await;
    let res = server
        .client
        .post(format!("{}/image-pipeline/upload", server.url))
        .multipart(
            Form::new()
                .part("file", Part::bytes(png(40, 30)).file_name("a.png"))
                .text("sourceType", "avatar")
                .text("sourceId", "user-abc123"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    let job_id = body["jobId"].as_str().unwrap();
    assert!(job_id.len() >= 20, "job ids are unguessable: {job_id}");
    assert_eq!(body["message"], "File uploaded. Processing started.");
    assert_eq!(
        body["statusUrl"],
        format!("/image-pipeline/status/{job_id}")
    );
    assert_eq!(location, body["statusUrl"]);
    assert_eq!(server.stored_keys().await, [format!("staging/{job_id}")]);
    let (code, status) = server.get(&location).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(
        status,
        serde_json::json!({"jobId": job_id, "status": "PENDING"})
    );
}

#[tokio::test]
async fn missing_file_is_no_file() {
    let server = TestServer::start().await;
    let form = Form::new()
        .text("sourceType", "avatar")
        .text("sourceId", "u1");
    assert_error(
        &server.post_form(form).await,
        StatusCode::BAD_REQUEST,
        "NO_FILE",
        "No file provided",
    );
    // Not multipart at all.
    let res = server
        .client
        .post(format!("{}/image-pipeline/upload", server.url))
        .body("hello")
        .send()
        .await
        .unwrap();
    let got = crate::common::json(res).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "NO_FILE", "No file provided");
    assert_nothing_left(&server).await;
}

#[tokio::test]
async fn missing_or_empty_fields_are_missing_fields() {
    let server = TestServer::start().await;
    let cases = [
        Form::new()
            .part("file", Part::bytes(png(8, 8)))
            .text("sourceId", "u1"),
        Form::new()
            .part("file", Part::bytes(png(8, 8)))
            .text("sourceType", "avatar"),
        Form::new()
            .part("file", Part::bytes(png(8, 8)))
            .text("sourceType", "")
            .text("sourceId", "u1"),
    ];
    for form in cases {
        let got = server.post_form(form).await;
        assert_error(
            &got,
            StatusCode::BAD_REQUEST,
            "MISSING_FIELDS",
            "sourceType and sourceId are required",
        );
    }
    assert_nothing_left(&server).await;
}

#[tokio::test]
async fn unknown_source_type_and_bad_source_id_are_refused() {
    let server = TestServer::start().await;
    let got = server.upload(png(8, 8), "poster", "u1").await;
    assert_error(
        &got,
        StatusCode::BAD_REQUEST,
        "UNKNOWN_SOURCE_TYPE",
        "Unknown sourceType: poster",
    );
    for bad in ["../etc", "a/b", "-x", "has space", &"x".repeat(129)] {
        let got = server.upload(png(8, 8), "avatar", bad).await;
        assert_error(
            &got,
            StatusCode::BAD_REQUEST,
            "INVALID_SOURCE_ID",
            "Invalid sourceId",
        );
    }
    assert_nothing_left(&server).await;
}

#[tokio::test]
async fn fields_may_come_after_the_file() {
    let server = TestServer::start().await;
    let form = Form::new()
        .part("file", Part::bytes(png(8, 8)).file_name("x.png"))
        .text("sourceId", "u1")
        .text("sourceType", "avatar");
    let (code, body) = server.post_form(form).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn too_large_is_refused_while_streaming() {
    let server = TestServer::start_with("max_file_size = 1048576").await;
    let big = vec![0xFFu8; 3 * 1024 * 1024];
    let message = "File too large. Maximum size: 1MB";
    // With a Content-Length (refused before reading) ...
    let got = server.upload(big.clone(), "avatar", "u1").await;
    assert_error(
        &got,
        StatusCode::PAYLOAD_TOO_LARGE,
        "FILE_TOO_LARGE",
        message,
    );
    // ... and chunked, with no length announced: the limit is counted as bytes arrive.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let part = Part::stream(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .file_name("big.jpg");
    let form = Form::new()
        .text("sourceType", "avatar")
        .text("sourceId", "u1")
        .part("file", part);
    let got = server.post_form(form).await;
    assert_error(
        &got,
        StatusCode::PAYLOAD_TOO_LARGE,
        "FILE_TOO_LARGE",
        message,
    );
    assert_nothing_left(&server).await;
}

#[tokio::test]
async fn type_is_sniffed_from_bytes_not_name() {
    let server = TestServer::start_with("allowed_mime_types = [\"image/png\"]").await;
    let jpeg = corpus_bytes("orientation/Landscape_1.jpg");
    let got = server.upload(jpeg, "avatar", "u1").await;
    assert_error(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "TYPE_NOT_ALLOWED",
        "File type image/jpeg not allowed",
    );
    let got = server
        .upload(
            vec![0x00, 0x13, 0x37, 0x42, 0x99, 0x01, 0x02, 0x03],
            "avatar",
            "u1",
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "TYPE_NOT_ALLOWED",
        "File type application/octet-stream not allowed",
    );
    let got = server
        .upload(corpus_bytes("invalid/text_renamed.jpg"), "avatar", "u1")
        .await;
    assert_eq!(got.0, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", got.1);
    // A PNG named .jpg is a PNG.
    let (code, body) = server.upload(png(8, 8), "avatar", "u1").await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
}

/// `image/heif` is the registered type of the HEIF container: allowing it allows what sniffing
/// calls `image/heic`.
#[cfg(feature = "heif")]
#[tokio::test]
async fn image_heif_in_allowed_types_accepts_heic_uploads() {
    let server = TestServer::start_with("allowed_mime_types = [\"image/heif\"]").await;
    let (code, body) = server
        .upload(corpus_bytes("valid/heic_rgb_8bit_128.heif"), "avatar", "u1")
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let got = server
        .upload(corpus_bytes("orientation/Landscape_1.jpg"), "avatar", "u1")
        .await;
    assert_error(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "TYPE_NOT_ALLOWED",
        "File type image/jpeg not allowed",
    );
}

#[tokio::test]
async fn bombs_are_refused_from_the_header() {
    let server = TestServer::start().await;
    for (file, dims) in [
        ("invalid/bomb_webp_16383x16383_38_bytes.webp", "16383×16383"),
        (
            "invalid/bomb_png_100000x100000_header_only.png",
            "100000×100000",
        ),
        (
            "invalid/bomb_jpeg_lottapixel_64250x64250.jpg",
            "64250×64250",
        ),
        ("invalid/bomb_gif_65535x65535_screen.gif", "65535×65535"),
    ] {
        let (code, body) = server.upload(corpus_bytes(file), "avatar", "u1").await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{file}: {body}");
        assert_eq!(body["code"], "TOO_MANY_PIXELS", "{file}: {body}");
        let message = body["error"].as_str().unwrap();
        let names_a_limit = message.contains("100000000") || message.contains("20000");
        assert!(message.contains(dims) && names_a_limit, "{file}: {message}");
    }
    assert_nothing_left(&server).await;
}

#[tokio::test]
async fn unreadable_header_and_empty_file_are_unreadable_image() {
    let server = TestServer::start().await;
    let mut broken_png = b"\x89PNG\r\n\x1a\n".to_vec();
    broken_png.extend_from_slice(&[0x42; 40]);
    for bytes in [broken_png, Vec::new(), b"\xFF\xD8\xFF".to_vec()] {
        let (code, body) = server.upload(bytes, "avatar", "u1").await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["code"], "UNREADABLE_IMAGE", "{body}");
        assert!(!body["error"].as_str().unwrap().is_empty());
    }
    assert_nothing_left(&server).await;
}

#[tokio::test]
async fn storage_failure_is_503_and_leaves_no_job() {
    let server = TestServer::start().await;
    // A plain file where the staging folder should be makes every staging write fail.
    std::fs::write(
        server.dir.path().join("data/objects/staging"),
        b"not a folder",
    )
    .unwrap();
    let got = server.upload(png(8, 8), "avatar", "u1").await;
    assert_error(
        &got,
        StatusCode::SERVICE_UNAVAILABLE,
        "STORAGE_UNAVAILABLE",
        "Failed to upload file to storage",
    );
    assert_eq!(job_count(&server).await, 0);
}

#[tokio::test]
async fn queue_failure_is_503_and_leaves_no_staging_object() {
    let server = TestServer::start().await;
    let url = format!(
        "sqlite://{}",
        server.dir.path().join("data/ximagepipeline.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE jobs").execute(&pool).await.unwrap();
    let got = server.upload(png(8, 8), "avatar", "u1").await;
    assert_error(
        &got,
        StatusCode::SERVICE_UNAVAILABLE,
        "QUEUE_UNAVAILABLE",
        "Failed to create processing job",
    );
    assert_eq!(server.stored_keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn library_submit_applies_the_same_checks() {
    let server = TestServer::start().await;
    let p = &server.pipeline;
    let id = p.submit(png(20, 10), "avatar", "lib-user").await.unwrap();
    assert!(p.get_status(&id).await.unwrap().is_some());
    let err = p.submit(png(20, 10), "nope", "x").await.unwrap_err();
    assert_eq!(err.to_string(), "Unknown sourceType: nope");
    let err = p
        .submit(b"plain text".to_vec(), "avatar", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ximagepipeline::SubmitError::TypeNotAllowed { .. }),
        "{err}"
    );
}

/// A JPEG signature followed by megabytes of junk is refused from its first bytes: the intake
/// never reads on through the file looking for a header.
#[tokio::test]
async fn a_jpeg_signature_then_junk_is_refused_at_once() {
    let server = TestServer::start().await;
    let mut junk = vec![0xFF, 0xD8, 0xFF];
    junk.extend(vec![0u8; 3 << 20]);
    let (status, body) = server.upload(junk, "avatar", "u1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "UNREADABLE_IMAGE");
    assert_eq!(server.stored_keys().await, Vec::<String>::new());
}

/// A refusal answered before the body is read (here a bad `Idempotency-Key`) still reaches a
/// client that sends the whole body before reading (Node's `fetch` does): the server reads the
/// rest first instead of closing the connection under it, which the client would see as a
/// broken pipe rather than the refusal.
#[tokio::test]
async fn a_refusal_before_the_body_is_read_reaches_a_client_still_sending() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = TestServer::start().await;
    let stream = tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // More than loopback's socket buffers hold: the client is still writing when refused.
    let body = vec![b'x'; 8 << 20];
    let head = format!(
        "POST /image-pipeline/upload HTTP/1.1\r\nHost: test\r\nIdempotency-Key: {}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
        "k".repeat(300),
        body.len()
    );
    // The writing half comes back and stays open: a closed one is a client that left.
    let sending = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&body).await?;
        writer.flush().await.map(|()| writer)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !String::from_utf8_lossy(&answer).contains("INVALID_IDEMPOTENCY_KEY") {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.expect("the answer within 30 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("INVALID_IDEMPOTENCY_KEY"), "{answer}");
    sending
        .await
        .unwrap()
        .expect("the whole body was taken, not cut off with a reset");
}
