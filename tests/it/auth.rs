//! API keys (`[auth]`): off by default; on, each route needs a key with its scope, the key
//! checked before a byte is staged; several keys at once for rotation; status and `/files`
//! stay readable unless protected.

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{TestServer, png};

const WRITER: &str = "xip_writer_key_0123456789abcdef";
const ROTATED: &str = "xip_next_writer_key_fedcba9876543210";
const READER: &str = "xip_reader_key_0123456789abcdef";

fn sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// `[auth]` with a writer key, its rotated successor and a read-only key.
fn auth_config(extra: &str) -> String {
    format!(
        "[auth]\n{extra}\n\
         [[auth.keys]]\nname = \"backend\"\nsha256 = \"{}\"\nscopes = [\"upload\", \"read\", \"delete\"]\n\
         [[auth.keys]]\nname = \"backend-next\"\nsha256 = \"{}\"\nscopes = [\"upload\", \"read\", \"delete\"]\n\
         [[auth.keys]]\nname = \"dashboard\"\nsha256 = \"{}\"\nscopes = [\"read\"]\n",
        sha256(WRITER),
        sha256(ROTATED),
        sha256(READER)
    )
}

/// Sends `method path` with `key` as a Bearer credential (none when `None`); an upload form
/// for POST. Returns the status, the `WWW-Authenticate` header and the JSON body.
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    key: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = server
        .client
        .request(method.clone(), format!("{}{path}", server.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if method == Method::POST {
        let form = Form::new()
            .text("sourceType", "avatar")
            .text("sourceId", "u1")
            .part("file", Part::bytes(png(32, 32)).file_name("a.png"));
        request = request.multipart(form);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, challenge, body)
}

const UPLOAD: &str = "/image-pipeline/upload";
const LIST: &str = "/image-pipeline/media?sourceType=avatar&sourceId=u1";

#[tokio::test]
async fn without_a_known_key_nothing_is_uploaded_listed_or_deleted() {
    let server = TestServer::start_with(&auth_config("")).await;
    for (method, path) in [
        (Method::POST, UPLOAD),
        (Method::GET, LIST),
        (Method::GET, "/image-pipeline/media/med_x"),
        (Method::DELETE, "/image-pipeline/media/med_x"),
    ] {
        for key in [None, Some("not-a-key"), Some(&WRITER[1..])] {
            let (status, challenge, body) = call(&server, method.clone(), path, key).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {key:?}: {body}"
            );
            assert_eq!(body["code"], "UNAUTHORIZED");
            assert!(challenge.unwrap().starts_with("Bearer"), "{method} {path}");
        }
    }
    assert_eq!(
        server.stored_keys().await,
        Vec::<String>::new(),
        "nothing staged"
    );
}

#[tokio::test]
async fn each_key_does_what_its_scopes_allow() {
    let server = TestServer::start_with(&auth_config("")).await;
    // Both writer keys work at once: the old one can be retired after the switch.
    for key in [WRITER, ROTATED] {
        let (status, _, body) = call(&server, Method::POST, UPLOAD, Some(key)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    server.drain().await;
    let (status, _, body) = call(&server, Method::POST, UPLOAD, Some(READER)).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &"FORBIDDEN".into()),
        "{body}"
    );

    let (status, _, list) = call(&server, Method::GET, LIST, Some(READER)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["media"].as_array().unwrap().len(), 2);
    let media = format!(
        "/image-pipeline/media/{}",
        list["media"][0]["id"].as_str().unwrap()
    );
    let (status, _, _) = call(&server, Method::GET, &media, Some(READER)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = call(&server, Method::DELETE, &media, Some(READER)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read key cannot delete: {body}"
    );
    let (status, _, _) = call(&server, Method::DELETE, &media, Some(WRITER)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The status (by its unguessable job id) and the public files stay open.
    let (status, _, body) = call(&server, Method::GET, "/image-pipeline/status/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let url = list["media"][1]["urls"]["sm"].as_str().unwrap();
    assert_eq!(
        server.client.get(url).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn protect_status_puts_the_status_behind_a_read_key() {
    let server = TestServer::start_with(&auth_config("protect_status = true")).await;
    let path = "/image-pipeline/status/nope";
    let (status, _, _) = call(&server, Method::GET, path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&server, Method::GET, path, Some(READER)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "let through, then not found");
}

#[tokio::test]
async fn a_wrong_auth_table_stops_start_up_with_its_key() {
    for (auth, key) in [
        ("[auth]\n", "auth.keys"),
        (
            "[auth]\n[[auth.keys]]\nname = \"a\"\nsha256 = \"abc\"\nscopes = [\"read\"]\n",
            "auth.keys.sha256",
        ),
        (
            &format!(
                "[auth]\n[[auth.keys]]\nname = \"a\"\nsha256 = \"{}\"\nscopes = [\"all\"]\n",
                sha256("k")
            ),
            "auth.keys.scopes",
        ),
        (
            &auth_config("files = \"signed\"\nurl_secret = \"short\""),
            "auth.url_secret",
        ),
        (&auth_config("files = \"everyone\""), "auth.files"),
        (
            &format!(
                "storage_url = \"s3://bucket\"\n{}",
                auth_config(&format!(
                    "files = \"signed\"\nurl_secret = \"{URL_SECRET}\""
                ))
            ),
            "auth.files",
        ),
    ] {
        let table: toml::Table = toml::from_str(auth).unwrap();
        let error = ximagepipeline::Config::load(None, std::iter::empty(), table)
            .unwrap_err()
            .to_string();
        assert!(error.contains(key), "{auth}: {error}");
    }
}

const URL_SECRET: &str = "a-url-secret-of-at-least-32-characters";

/// Uploads with the writer key, runs the job, and returns the media's `sm` URL as answered.
async fn stored_variant_url(server: &TestServer) -> String {
    let (status, _, body) = call(server, Method::POST, UPLOAD, Some(WRITER)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    server.drain().await;
    let (_, _, list) = call(server, Method::GET, LIST, Some(READER)).await;
    list["media"][0]["urls"]["sm"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signed_files_links_work_unaltered_until_they_expire() {
    let server = TestServer::start_with(&auth_config(&format!(
        "files = \"signed\"\nurl_secret = \"{URL_SECRET}\"\nsigned_url_ttl_secs = 600"
    )))
    .await;
    let url = stored_variant_url(&server).await;
    let (plain, query) = url.split_once('?').expect("a signed link");
    assert!(
        query.starts_with("expires=") && query.contains("&signature="),
        "{url}"
    );

    let answer = server.client.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let cache = answer.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cache.starts_with("private, max-age="), "{cache}");

    let key = &plain[plain.find("/files/").unwrap() + "/files/".len()..];
    let expired =
        ximagepipeline::storage::UrlSigner::new(URL_SECRET.as_bytes(), std::time::Duration::ZERO)
            .query(key);
    let tampered = query.replace("signature=", "signature=00");
    for wrong in [
        plain.to_owned(),
        format!("{plain}?{tampered}"),
        format!("{plain}?{expired}"),
        format!("{}?{query}", plain.replace("/sm.webp", "/xs.webp")),
    ] {
        let answer = server.client.get(&wrong).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{wrong}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "FORBIDDEN");
    }
}

#[tokio::test]
async fn key_protected_files_need_a_read_key() {
    let server = TestServer::start_with(&auth_config("files = \"key\"")).await;
    let url = stored_variant_url(&server).await;
    assert!(!url.contains('?'), "{url}");
    let answer = server.client.get(&url).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let answer = server
        .client
        .get(&url)
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}

/// With access control on, the fields come before the file (API.md §4a), so an upload is
/// judged before its bytes are read.
#[tokio::test]
async fn with_auth_the_fields_come_before_the_file() {
    let server = TestServer::start_with(&auth_config("")).await;
    let form = Form::new()
        .part("file", Part::bytes(png(32, 32)).file_name("a.png"))
        .text("sourceType", "avatar")
        .text("sourceId", "u1");
    let answer = server
        .client
        .post(format!("{}{UPLOAD}", server.url))
        .bearer_auth(WRITER)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["code"], "FIELDS_AFTER_FILE");
    assert_eq!(server.stored_keys().await, Vec::<String>::new());
}
