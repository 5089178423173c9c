//! CORS (`[cors]`): a page on a listed origin may upload and poll; any other origin's browser
//! gets no permission; off by default.

use reqwest::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, HeaderMap,
};
use reqwest::{Method, StatusCode};

use crate::common::TestServer;

const APP: &str = "https://app.example.com";

/// Sends the preflight a browser sends before a cross-origin upload with a token.
async fn preflight(server: &TestServer, origin: &str) -> (StatusCode, HeaderMap) {
    let response = server
        .client
        .request(
            Method::OPTIONS,
            format!("{}/image-pipeline/upload", server.url),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &reqwest::header::HeaderName) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_listed_origin_may_upload_and_poll_and_no_other() {
    let server = TestServer::start_with(&format!("[cors]\nallowed_origins = [\"{APP}\"]\n")).await;

    let (status, headers) = preflight(&server, APP).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(header(&headers, &ACCESS_CONTROL_ALLOW_ORIGIN), APP);
    assert!(header(&headers, &ACCESS_CONTROL_ALLOW_METHODS).contains("POST"));
    let allowed = header(&headers, &ACCESS_CONTROL_ALLOW_HEADERS);
    assert!(
        allowed.contains("authorization") && allowed.contains("idempotency-key"),
        "{allowed}"
    );

    let (_, headers) = preflight(&server, "https://evil.example").await;
    assert!(
        !headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN),
        "{headers:?}"
    );

    // The answer itself (here a status poll) carries the permission and what may be read.
    let response = server
        .client
        .get(format!("{}/image-pipeline/status/nope", server.url))
        .header("Origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let headers = response.headers();
    assert_eq!(header(headers, &ACCESS_CONTROL_ALLOW_ORIGIN), APP);
    let exposed = header(headers, &ACCESS_CONTROL_EXPOSE_HEADERS);
    assert!(
        exposed.contains("retry-after") && exposed.contains("idempotent-replayed"),
        "{exposed}"
    );
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let server = TestServer::start().await;
    let (_, headers) = preflight(&server, APP).await;
    assert!(
        !headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN),
        "{headers:?}"
    );
}
