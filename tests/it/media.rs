//! Media routes: get, list (newest first), delete with every object.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestServer, png};

#[tokio::test]
async fn get_list_and_delete_media() {
    let server = TestServer::start().await;
    let (_, first) = server.process(png(300, 200), "avatar").await;
    let (_, second) = server.process(png(200, 300), "avatar").await;
    let first_id = first["media"]["id"].as_str().unwrap().to_owned();
    let second_id = second["media"]["id"].as_str().unwrap().to_owned();

    let (code, got) = server
        .get(&format!("/image-pipeline/media/{first_id}"))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got, first["media"]);

    let (code, list) = server
        .get("/image-pipeline/media?sourceType=avatar&sourceId=it-1")
        .await;
    assert_eq!(code, StatusCode::OK);
    let ids: Vec<_> = list["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!(second_id), json!(first_id)], "newest first");
    let (_, other) = server
        .get("/image-pipeline/media?sourceType=avatar&sourceId=someone-else")
        .await;
    assert_eq!(other, json!({"media": []}));

    let before = server.stored_keys().await;
    assert_eq!(before.len(), 6, "{before:?}");
    let path = format!("/image-pipeline/media/{first_id}");
    assert_eq!(server.delete(&path).await, StatusCode::NO_CONTENT);
    let after = server.stored_keys().await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|k| !k.contains(&first_id)), "{after:?}");
    let got = server
        .get(&format!("/image-pipeline/media/{first_id}"))
        .await;
    assert_eq!(
        got,
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Media not found", "code": "MEDIA_NOT_FOUND"})
        )
    );
    // The job's status was just read (and is kept in memory as settled): it must not go on
    // showing the deleted media.
    let (code, status) = server
        .get(&format!(
            "/image-pipeline/status/{}",
            first["jobId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (code, &status["media"]),
        (StatusCode::OK, &json!(null)),
        "{status}"
    );
    let path = format!("/image-pipeline/media/{first_id}");
    assert_eq!(server.delete(&path).await, StatusCode::NOT_FOUND);
    assert!(
        !server
            .pipeline
            .delete_media(&ximagepipeline::MediaId::from_string(first_id))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn list_needs_both_parameters() {
    let server = TestServer::start().await;
    for query in [
        "",
        "?sourceType=avatar",
        "?sourceId=x",
        "?sourceType=&sourceId=x",
    ] {
        let (code, body) = server.get(&format!("/image-pipeline/media{query}")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["code"], "MISSING_FIELDS");
    }
}

#[tokio::test]
async fn library_api_exposes_the_merged_configuration() {
    let server =
        TestServer::start_with("[source_types.banner]\nvariants = [\"xl\"]\nquality = 75").await;
    let p = &server.pipeline;
    assert_eq!(p.variant_presets()["banner"], ["xl"]);
    assert_eq!(p.variant_presets()["avatar"], ["xs", "sm"]);
    assert_eq!(p.variants()["md"].width, 640);
    assert_eq!(p.source_types()["banner"].quality, 75.0);
}
