//! `/files/*key`: stored objects with the right headers, and nothing outside the storage root.

use reqwest::StatusCode;

use crate::common::{TestServer, png};

#[tokio::test]
async fn stored_objects_are_served_with_type_nosniff_and_immutable_caching() {
    let server = TestServer::start().await;
    let (_, body) = server.process(png(100, 100), "avatar").await;
    let xs = body["media"]["urls"]["xs"].as_str().unwrap();
    let res = server.client.get(xs).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["content-type"], "image/webp");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    let original = body["media"]["originalUrl"].as_str().unwrap();
    let res = server.client.get(original).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
}

#[tokio::test]
async fn keys_cannot_escape_or_reach_staging() {
    let server = TestServer::start().await;
    let (_, body) = server.upload(png(10, 10), "avatar", "u1").await;
    let job = body["jobId"].as_str().unwrap();
    std::fs::write(server.dir.path().join("secret.txt"), b"secret").unwrap();
    for path in [
        format!("/files/staging/{job}"),
        "/files/../secret.txt".to_owned(),
        "/files/media/..%2F..%2F..%2Fsecret.txt".to_owned(),
        "/files/media/%2e%2e/%2e%2e/%2e%2e/secret.txt".to_owned(),
        "/files/media/missing.webp".to_owned(),
        "/files/%2Fetc%2Fpasswd".to_owned(),
    ] {
        let res = server
            .client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!res.text().await.unwrap().contains("secret"), "{path}");
    }
}

/// Odd spellings of a key are answered as what they are: a trailing slash is the same object
/// with its type; a store's own file names (`x#1`) and other characters our keys never use
/// are 404, never a 503 that would report the store down.
#[tokio::test]
async fn odd_spellings_of_keys_are_the_object_or_404_never_503() {
    let server = TestServer::start().await;
    let (_, body) = server.process(png(100, 100), "avatar").await;
    let xs = body["media"]["urls"]["xs"].as_str().unwrap();
    let res = server.client.get(format!("{xs}/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/webp");
    let folder = xs.rsplit_once('/').unwrap().0;
    for odd in ["x%231", "xs.webp%231", "x%20y.webp", "xs.webp%00", "xs"] {
        let res = server
            .client
            .get(format!("{folder}/{odd}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{odd}");
    }
}
