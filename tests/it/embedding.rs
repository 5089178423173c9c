//! The routers a host app mounts (API.md §4b): each stands alone and has no fallback, so they
//! merge into an app that has its own; only `serve` adds the JSON 404. The upload hook lets
//! the host judge an upload's source with its own session.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;

use ximagepipeline::http::hook::{HookRefusal, UploadHook, UploadRequest};

use crate::common::{TestServer, png};

/// Sends a GET for `path` to `app` in process; returns the status and the body as text.
async fn get_from(app: &Router, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A host app with its own routes and its own fallback merges both routers (axum panics at
/// the merge when two routers set a fallback).
#[tokio::test]
async fn the_routers_merge_into_a_host_app_with_its_own_fallback() {
    let server = TestServer::start().await;
    let (_, done) = server.process(png(40, 30), "avatar").await;
    let url = done["media"]["urls"]["sm"].as_str().unwrap();
    let file = &url[url.find("/files/").unwrap()..];

    let app = Router::new()
        .route("/host", get(|| async { "the host's own route" }))
        .fallback(|| async { (StatusCode::IM_A_TEAPOT, "the host's fallback") })
        .merge(server.pipeline.router())
        .merge(server.pipeline.files_router());

    assert_eq!(get_from(&app, "/host").await.0, StatusCode::OK);
    let job = done["jobId"].as_str().unwrap();
    let (status, body) = get_from(&app, &format!("/image-pipeline/status/{job}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get_from(&app, file).await.0, StatusCode::OK);
    let (status, body) = get_from(&app, "/elsewhere").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::IM_A_TEAPOT, "the host's fallback")
    );
}

/// Each router holds only its own routes: the API serves no files, `/files` no API, so a host
/// can put a layer (its auth) on one and leave the other public.
#[tokio::test]
async fn each_router_stands_alone() {
    let server = TestServer::start().await;
    let (_, done) = server.process(png(40, 30), "avatar").await;
    let url = done["media"]["urls"]["sm"].as_str().unwrap();
    let file = &url[url.find("/files/").unwrap()..];
    let status = format!("/image-pipeline/status/{}", done["jobId"].as_str().unwrap());

    let api = server.pipeline.router();
    assert_eq!(get_from(&api, &status).await.0, StatusCode::OK);
    assert_eq!(get_from(&api, file).await.0, StatusCode::NOT_FOUND);

    let files = server.pipeline.files_router();
    assert_eq!(get_from(&files, file).await.0, StatusCode::OK);
    assert_eq!(get_from(&files, &status).await.0, StatusCode::NOT_FOUND);

    // `serve` merges both and answers any other path with the contract's JSON 404.
    let (code, body) = server.get("/elsewhere").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
}

/// The host's check in this test: the `x-user` header (a stand-in for the host's session) must
/// name the `sourceId`.
struct OwnSourceOnly;

#[async_trait::async_trait]
impl UploadHook for OwnSourceOnly {
    async fn check(&self, upload: &UploadRequest<'_>) -> Result<(), HookRefusal> {
        let user = upload.headers.get("x-user").and_then(|v| v.to_str().ok());
        match user {
            None => Err(HookRefusal::Unauthorized),
            Some(user) if user == upload.source_id => Ok(()),
            Some(_) => Err(HookRefusal::Forbidden("Upload to your own profile".into())),
        }
    }
}

/// A multipart body with `parts` (name, value) in this order; the `file` part holds a PNG.
fn form(parts: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "xiphook";
    let mut body = Vec::new();
    for (name, value) in parts {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").bytes(),
        );
        if *name == "file" {
            body.extend(b"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n");
            body.extend(png(24, 24));
        } else {
            body.extend(format!("\r\n\r\n{value}").bytes());
        }
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The hook sees the parsed source before the file: a user uploads into their own source
/// only, a refusal stages nothing, and the fields must come first.
#[tokio::test]
async fn the_upload_hook_refuses_before_a_byte_is_staged() {
    let server = TestServer::start().await;
    let app = server
        .pipeline
        .clone()
        .with_upload_hook(std::sync::Arc::new(OwnSourceOnly))
        .router();
    let fields = [("sourceType", "avatar"), ("sourceId", "u1"), ("file", "")];
    let upload = async |user: Option<&str>, parts: &[(&str, &str)]| {
        let (content_type, body) = form(parts);
        let mut request =
            Request::post("/image-pipeline/upload").header("content-type", content_type);
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    };

    let (status, body) = upload(Some("u2"), &fields).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN")),
        "{body}"
    );
    assert_eq!(body["error"], "Upload to your own profile");
    let (status, body) = upload(None, &fields).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let file_first = [("file", ""), ("sourceType", "avatar"), ("sourceId", "u1")];
    let (status, body) = upload(Some("u1"), &file_first).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("FIELDS_AFTER_FILE"))
    );
    assert_eq!(
        server.stored_keys().await,
        Vec::<String>::new(),
        "nothing staged"
    );

    let (status, body) = upload(Some("u1"), &fields).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Without a hook (or [auth]) any order stays valid.
    let (content_type, body) = form(&file_first);
    let answer = server
        .client
        .post(format!("{}/image-pipeline/upload", server.url))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
}
