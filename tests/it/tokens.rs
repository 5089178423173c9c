//! Upload tokens (`[auth] token_secret`): the backend mints one for a source (over HTTP with a
//! key, with the library, with the command line); a browser uploads with it, as a Bearer
//! credential or a `token` field before the file, into that source only, before it expires,
//! within its size limit and once when single-use; it then reads the status of its own jobs.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use ximagepipeline::TokenRequest;
use ximagepipeline::intake::UploadRules;
use ximagepipeline::intake::tokens::TokenSigner;

use crate::common::{TestServer, json as read_json, png};

const WRITER: &str = "xip_writer_key_0123456789abcdef";
const READER: &str = "xip_reader_key_0123456789abcdef";
const SECRET: &str = "a-token-secret-of-at-least-32-characters";

fn sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// `[auth]` with upload tokens, a writer key and a read-only key, and `extra` lines.
fn config(extra: &str) -> String {
    format!(
        "[auth]\ntoken_secret = \"{SECRET}\"\n{extra}\n\
         [[auth.keys]]\nname = \"backend\"\nsha256 = \"{}\"\nscopes = [\"upload\", \"read\"]\n\
         [[auth.keys]]\nname = \"dashboard\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
        sha256(WRITER),
        sha256(READER)
    )
}

const UPLOAD: &str = "/image-pipeline/upload";

/// Asks `POST /tokens` with `key` for `body`.
async fn mint(server: &TestServer, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = server
        .client
        .post(format!("{}/image-pipeline/tokens", server.url))
        .json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    read_json(request.send().await.unwrap()).await
}

/// A token for avatar `source_id` with `extra` request fields, minted over HTTP.
async fn token_for(server: &TestServer, source_id: &str, extra: Value) -> String {
    let mut body = json!({ "sourceType": "avatar", "sourceId": source_id });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, minted) = mint(server, Some(WRITER), body).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    minted["token"].as_str().unwrap().to_owned()
}

/// How a token travels with an upload.
#[derive(Clone, Copy, Debug)]
enum Carry {
    Bearer,
    /// The `token` form field, first.
    Field,
}

/// Uploads `bytes` into avatar `source_id` with `token` carried as `carry`.
async fn upload_with(
    server: &TestServer,
    token: &str,
    carry: Carry,
    source_id: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let mut form = Form::new();
    if let Carry::Field = carry {
        form = form.text("token", token.to_owned());
    }
    let form = form
        .text("sourceType", "avatar")
        .text("sourceId", source_id.to_owned())
        .part("file", Part::bytes(bytes).file_name("a.png"));
    let mut request = server
        .client
        .post(format!("{}{UPLOAD}", server.url))
        .multipart(form);
    if let Carry::Bearer = carry {
        request = request.bearer_auth(token);
    }
    read_json(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_token_uploads_into_its_source_only() {
    let server = TestServer::start_with(&config("")).await;
    let token = token_for(&server, "user-1", json!({})).await;
    for carry in [Carry::Bearer, Carry::Field] {
        let (status, body) = upload_with(&server, &token, carry, "user-1", png(32, 32)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{carry:?}: {body}");
        let (status, body) = upload_with(&server, &token, carry, "user-2", png(32, 32)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{carry:?}: {body}");
        assert_eq!(body["code"], "FORBIDDEN");
    }
    assert_eq!(server.drain().await, 2, "only the two uploads into user-1");
    assert!(
        server
            .stored_keys()
            .await
            .iter()
            .all(|k| !k.contains("user-2")),
        "nothing of the refused uploads was kept"
    );
    // A token is not a key: it lists nothing.
    let answer = server
        .client
        .get(format!(
            "{}/image-pipeline/media?sourceType=avatar&sourceId=user-1",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_is_refused_when_forged_expired_or_after_the_file() {
    let server = TestServer::start_with(&config("")).await;
    let rules = UploadRules::from_config(server.pipeline.config());
    let request = TokenRequest {
        source_type: "avatar".into(),
        source_id: "user-1".into(),
        ttl_secs: Some(60),
        ..TokenRequest::default()
    };
    let signer = TokenSigner::new(SECRET.as_bytes(), std::time::Duration::from_secs(60));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = signer.mint(&request, &rules, now - 61).unwrap().token;
    let forged = TokenSigner::new(b"another secret of 32 characters!", Default::default())
        .mint(&request, &rules, now)
        .unwrap()
        .token;
    for carry in [Carry::Bearer, Carry::Field] {
        for (token, says) in [(&expired, "expired"), (&forged, "not valid")] {
            let (status, body) = upload_with(&server, token, carry, "user-1", png(8, 8)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{carry:?}: {body}");
            assert!(body["error"].as_str().unwrap().contains(says), "{body}");
        }
    }

    // Without a credential, nothing past the fields that may bring one is read.
    let token = token_for(&server, "user-1", json!({})).await;
    let late = Form::new()
        .text("sourceType", "avatar")
        .text("sourceId", "user-1")
        .part("file", Part::bytes(png(8, 8)).file_name("a.png"))
        .text("token", token);
    let (status, body) = server.post_form(late).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("before the file"));
    let junk_first = Form::new()
        .part("caption", Part::bytes(vec![b'x'; 256 << 10]))
        .text("sourceType", "avatar");
    let (status, _) = server.post_form(junk_first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(server.stored_keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_single_use_token_uploads_once_even_when_raced() {
    let server = TestServer::start_with(&config("")).await;
    let token = token_for(&server, "user-1", json!({ "singleUse": true })).await;
    let tries = (0..8).map(|i| {
        let carry = if i % 2 == 0 {
            Carry::Bearer
        } else {
            Carry::Field
        };
        upload_with(&server, &token, carry, "user-1", png(16, 16))
    });
    let answers = futures::future::join_all(tries).await;
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    assert_eq!(accepted, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::ACCEPTED) {
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["error"].as_str().unwrap().contains("used"), "{body}");
    }
    assert_eq!(server.drain().await, 1);

    // A token used for the wrong source is not spent by it.
    let token = token_for(&server, "user-2", json!({ "singleUse": true })).await;
    let (status, _) = upload_with(&server, &token, Carry::Field, "user-1", png(8, 8)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = upload_with(&server, &token, Carry::Field, "user-2", png(8, 8)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn a_token_may_set_a_smaller_size_limit() {
    let server = TestServer::start_with(&config("")).await;
    let small = png(8, 8);
    let large = png(256, 256);
    assert!(small.len() < 2048 && large.len() > 2048);
    let token = token_for(&server, "user-1", json!({ "maxBytes": 2048 })).await;
    let (status, body) = upload_with(&server, &token, Carry::Bearer, "user-1", large).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "FILE_TOO_LARGE");
    assert_eq!(body["error"], "File too large. Maximum size: 2KB");
    let (status, body) = upload_with(&server, &token, Carry::Bearer, "user-1", small).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(server.drain().await, 1);
}

#[tokio::test]
async fn a_token_reads_the_status_of_its_own_jobs_only() {
    let server = TestServer::start_with(&config("protect_status = true")).await;
    let token = token_for(&server, "user-1", json!({})).await;
    let other = token_for(&server, "user-1", json!({})).await;
    let (_, mine) = upload_with(&server, &token, Carry::Field, "user-1", png(8, 8)).await;
    let (_, theirs) = upload_with(&server, &other, Carry::Bearer, "user-1", png(8, 8)).await;
    server.drain().await;
    let status_url = |upload: &Value| {
        format!(
            "{}{}",
            server.url,
            upload["statusUrl"].as_str().expect("accepted")
        )
    };
    let read = |url: String, bearer: Option<&str>| {
        let mut request = server.client.get(url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move { read_json(request.send().await.unwrap()).await }
    };

    let (status, body) = read(status_url(&mine), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    // As an EventSource would send it: in the query.
    let query = format!("{}?token={}", status_url(&mine), token);
    let (status, body) = read(query, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = read(status_url(&theirs), Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = read(status_url(&theirs), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = read(status_url(&theirs), Some(READER)).await;
    assert_eq!(status, StatusCode::OK, "a read key reads every job");
}

#[tokio::test]
async fn minting_needs_an_upload_key_and_a_grantable_request() {
    let server = TestServer::start_with(&config("")).await;
    let ok = json!({ "sourceType": "avatar", "sourceId": "user-1", "ttlSecs": 120 });
    let (status, _) = mint(&server, None, ok.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = mint(&server, Some(READER), ok.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, minted) = mint(&server, Some(WRITER), ok).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    assert_eq!(
        (&minted["sourceId"], &minted["singleUse"]),
        (&json!("user-1"), &json!(false))
    );
    let expires = chrono::DateTime::parse_from_rfc3339(minted["expiresAt"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let left = expires - chrono::Utc::now().timestamp();
    assert!((115..=120).contains(&left), "{left}");

    for (body, code) in [
        (
            json!({ "sourceType": "nope", "sourceId": "u" }),
            "UNKNOWN_SOURCE_TYPE",
        ),
        (
            json!({ "sourceType": "avatar", "sourceId": "../u" }),
            "INVALID_SOURCE_ID",
        ),
        (
            json!({ "sourceType": "avatar", "sourceId": "u", "ttlSecs": 90_000 }),
            "INVALID_TOKEN_REQUEST",
        ),
        (
            json!({ "sourceType": "avatar", "sourceId": "u", "maxBytes": 0 }),
            "INVALID_TOKEN_REQUEST",
        ),
        (
            json!({ "sourceType": "avatar", "sourceId": "u", "scope": "all" }),
            "INVALID_TOKEN_REQUEST",
        ),
        (json!("not an object"), "INVALID_TOKEN_REQUEST"),
    ] {
        let (status, answer) = mint(&server, Some(WRITER), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["code"], code, "{body}");
    }

    // The library mints the same tokens.
    let minted = server
        .pipeline
        .mint_upload_token(&TokenRequest {
            source_type: "avatar".into(),
            source_id: "user-9".into(),
            ..TokenRequest::default()
        })
        .unwrap();
    let (status, body) =
        upload_with(&server, &minted.token, Carry::Bearer, "user-9", png(8, 8)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn without_a_secret_tokens_are_off() {
    let keys = format!(
        "[auth]\n[[auth.keys]]\nname = \"backend\"\nsha256 = \"{}\"\nscopes = [\"upload\"]\n",
        sha256(WRITER)
    );
    let server = TestServer::start_with(&keys).await;
    let (status, body) = mint(
        &server,
        Some(WRITER),
        json!({ "sourceType": "avatar", "sourceId": "u" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("token_secret"));
    let rules = UploadRules::from_config(server.pipeline.config());
    let request = TokenRequest {
        source_type: "avatar".into(),
        source_id: "u".into(),
        ..TokenRequest::default()
    };
    let token = TokenSigner::new(SECRET.as_bytes(), std::time::Duration::from_secs(60))
        .mint(&request, &rules, u64::MAX / 2)
        .unwrap()
        .token;
    let (status, _) = upload_with(&server, &token, Carry::Bearer, "u", png(8, 8)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_short_token_secret_stops_start_up() {
    let table: toml::Table = toml::from_str(&config("").replace(SECRET, "short")).unwrap();
    let error = ximagepipeline::Config::load(None, std::iter::empty(), table)
        .unwrap_err()
        .to_string();
    assert!(error.contains("auth.token_secret"), "{error}");
}
