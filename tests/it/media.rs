//! Media routes: get, list (newest first, in pages), delete with every object.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use ximagepipeline::queue::{Media, NewJob, StoredVariant, now_ms};
use ximagepipeline::{JobId, MediaId};

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
    assert_eq!(other, json!({"media": [], "nextCursor": null}));

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

/// Records `n` media of avatar `source_id` straight in the job store, as workers would, each
/// with its own job; returns their ids, newest first (several may share a millisecond: then
/// the greater id first). Fast enough for a thousand.
async fn recorded_media(server: &TestServer, source_id: &str, n: usize) -> Vec<String> {
    let jobs = server.admin.jobs();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = JobId::generate();
        let job = NewJob {
            staging_key: format!("staging/{id}"),
            id: id.clone(),
            source_type: "avatar".into(),
            source_id: source_id.into(),
            original_filename: None,
            mime_type: "image/png".into(),
            file_size: 1,
            max_attempts: 3,
            client: None,
            token_id: None,
            request_id: None,
            trace_parent: None,
            webhook_url: None,
        };
        jobs.insert(job, now_ms()).await.unwrap();
        let claimed = jobs.claim("w", now_ms()).await.unwrap().unwrap();
        let media_id = MediaId::generate();
        let media = Media {
            id: media_id.clone(),
            job_id: claimed.id.clone(),
            source_type: "avatar".into(),
            source_id: source_id.into(),
            variants: vec![(
                "sm".into(),
                StoredVariant {
                    key: format!("media/avatar/{source_id}/{media_id}/sm.webp"),
                    width: 8,
                    height: 8,
                },
            )],
            original_key: None,
            width: 8,
            height: 8,
            aspect_ratio: "1:1".into(),
            blurhash: "00TI:j".into(),
            format: "png".into(),
            created_at: now_ms(),
        };
        assert!(
            jobs.complete(&claimed.id, "w", &media, now_ms())
                .await
                .unwrap()
        );
        ids.push((media.created_at, media_id.to_string()));
    }
    ids.sort_by(|a, b| b.cmp(a));
    ids.into_iter().map(|(_, id)| id).collect()
}

fn ids_of(page: &Value) -> Vec<String> {
    page["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// 1,200 media walked in pages while uploads to the same source go on: each of them exactly
/// once, newest first, with no gaps; the uploads arriving meanwhile shift nothing.
#[tokio::test]
async fn pages_walk_every_media_once_while_uploads_continue() {
    let server = TestServer::start().await;
    let before = recorded_media(&server, "many", 1_200).await;

    let (code, first) = server
        .get("/image-pipeline/media?sourceType=avatar&sourceId=many")
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ids_of(&first).len(), 1_000, "at most 1,000 without a limit");
    assert!(first["nextCursor"].is_string(), "more to come");

    let walk = async {
        let mut walked = Vec::new();
        let mut query = "limit=97".to_owned();
        loop {
            let (code, page) = server
                .get(&format!(
                    "/image-pipeline/media?sourceType=avatar&sourceId=many&{query}"
                ))
                .await;
            assert_eq!(code, StatusCode::OK, "{page}");
            let ids = ids_of(&page);
            assert!(ids.len() <= 97);
            walked.extend(ids);
            match page["nextCursor"].as_str() {
                Some(cursor) => query = format!("limit=97&cursor={cursor}"),
                None => return walked,
            }
        }
    };
    let uploads = async {
        for n in 0..12 {
            let (code, body) = server.upload(png(16 + n, 16), "avatar", "many").await;
            assert_eq!(code, StatusCode::ACCEPTED, "{body}");
            server.drain().await;
        }
    };
    let (walked, ()) = tokio::join!(walk, uploads);

    let unique: HashSet<&String> = walked.iter().collect();
    assert_eq!(unique.len(), walked.len(), "no media twice");
    let expected: Vec<&String> = before.iter().collect();
    let seen: Vec<&String> = walked.iter().filter(|id| before.contains(id)).collect();
    assert_eq!(seen, expected, "every earlier media once, newest first");
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_refused() {
    let server = TestServer::start().await;
    let list = "/image-pipeline/media?sourceType=avatar&sourceId=x";
    for (query, code) in [
        ("limit=0", "INVALID_LIMIT"),
        ("limit=501", "INVALID_LIMIT"),
        ("limit=ten", "INVALID_LIMIT"),
        ("cursor=nonsense", "INVALID_CURSOR"),
        ("cursor=12.med_x%27%3B--", "INVALID_CURSOR"),
    ] {
        let (status, body) = server.get(&format!("{list}&{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], code, "{query}: {body}");
    }
    let (status, body) = server.get(&format!("{list}&limit=500")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"media": [], "nextCursor": null}))
    );
}
