//! The routers a host app mounts (API.md §4b): each stands alone and has no fallback, so they
//! merge into an app that has its own; only `serve` adds the JSON 404.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;

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
