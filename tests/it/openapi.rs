//! `{prefix}/openapi.json`: served, under the configured prefix, and describing the answers the
//! routes really give (the property-based check against a live server is `scripts/api-check`).

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{TestServer, png};

/// The property names and required names of schema `name`.
fn fields(doc: &Value, name: &str) -> (Vec<String>, Vec<String>) {
    let schema = &doc["components"]["schemas"][name];
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name}"))
        .keys()
        .cloned()
        .collect();
    let required = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (properties, required)
}

/// `body` has every field `name` requires and no field it does not describe.
#[track_caller]
fn assert_described(doc: &Value, name: &str, body: &Value) {
    let (properties, required) = fields(doc, name);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    for key in &keys {
        assert!(
            properties.contains(key),
            "{name} does not describe {key}: {body}"
        );
    }
    for field in &required {
        assert!(body.get(field).is_some(), "{name} requires {field}: {body}");
    }
}

#[tokio::test]
async fn the_document_describes_the_answers_the_routes_give() {
    let server = TestServer::start().await;
    let (code, doc) = server.get("/image-pipeline/openapi.json").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");

    let (code, accepted) = server.upload(png(120, 80), "gallery", "doc-1").await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_described(&doc, "UploadAccepted", &accepted);
    let (code, pending) = server.status_of(&accepted).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_described(&doc, "JobPending", &pending);

    server.drain().await;
    let (code, complete) = server.status_of(&accepted).await;
    assert_eq!(code, StatusCode::OK);
    assert_described(&doc, "JobComplete", &complete);
    assert_described(&doc, "Media", &complete["media"]);
    let (_, page) = server
        .get("/image-pipeline/media?sourceType=gallery&sourceId=doc-1")
        .await;
    assert_described(&doc, "MediaPage", &page);

    let (code, refused) = server.upload(png(10, 10), "banner", "doc-1").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_described(&doc, "ApiError", &refused);
    let codes = &doc["components"]["schemas"]["ApiError"]["properties"]["code"]["enum"];
    assert!(
        codes.as_array().unwrap().contains(&refused["code"]),
        "{codes}"
    );

    let job = server
        .queue_unchecked(b"not an image".to_vec(), "gallery")
        .await;
    server.drain().await;
    let (code, failed) = server.get(&format!("/image-pipeline/status/{job}")).await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    assert_described(&doc, "JobFailed", &failed);
    let upload = &doc["paths"]["/image-pipeline/upload"]["post"]["responses"];
    for status in ["202", "400", "413", "415", "422", "503"] {
        assert!(upload.get(status).is_some(), "upload's {status}");
    }
}

#[tokio::test]
async fn the_document_follows_the_configuration() {
    let server = TestServer::start_with(
        "route_prefix = \"/img\"\n[source_types.banner]\nvariants = [\"lg\"]\nquality = 80\n",
    )
    .await;
    let (code, doc) = server.get("/img/openapi.json").await;
    assert_eq!(code, StatusCode::OK);
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert!(
        paths
            .iter()
            .all(|p| p.starts_with("/img/") || p.starts_with("/files/")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.ends_with("/tokens")),
        "no tokens route without [auth]"
    );
    let source_types =
        &doc["components"]["schemas"]["UploadForm"]["properties"]["sourceType"]["enum"];
    assert!(
        source_types.as_array().unwrap().contains(&"banner".into()),
        "{source_types}"
    );
    assert!(doc.get("security").is_none());
}
