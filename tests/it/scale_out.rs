//! The scale-out backends in one process: jobs in PostgreSQL, objects in an S3 bucket (a real
//! server that checks signatures). The many-process runs are in `processes.rs`.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use ximagepipeline::{Config, ImagePipeline};

use crate::backends::{PgSchema, S3Bucket};
use crate::common::{TestServer, corpus_bytes, webp_size};

const CDN: &str = "https://cdn.example.test/img";

async fn server(schema: &PgSchema, bucket: &S3Bucket) -> TestServer {
    TestServer::start_with(&format!(
        "database_url = \"{}\"\npublic_base_url = \"{CDN}\"\n{}",
        schema.url(),
        bucket.config()
    ))
    .await
}

/// The object keys a media JSON names, from URLs under the CDN base.
fn media_keys(media: &Value) -> BTreeSet<String> {
    let key = |url: &Value| {
        let url = url.as_str().unwrap_or_else(|| panic!("not a URL: {url}"));
        url.strip_prefix(&format!("{CDN}/"))
            .unwrap_or_else(|| panic!("{url} is not under public_base_url"))
            .to_owned()
    };
    let mut keys: BTreeSet<String> = media["urls"]
        .as_object()
        .unwrap()
        .values()
        .map(key)
        .collect();
    keys.insert(key(&media["originalUrl"]));
    keys
}

#[tokio::test]
async fn upload_with_postgres_and_s3_completes_and_deletes_cleanly() {
    let (schema, bucket) = (PgSchema::create().await, S3Bucket::create());
    let server = server(&schema, &bucket).await;
    let (code, body) = server
        .upload(corpus_bytes("photos/kodim03.png"), "gallery", "s3-1")
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let job = body["jobId"].as_str().unwrap().to_owned();
    assert_eq!(
        server.stored_keys().await,
        [format!("staging/{job}")],
        "the upload is staged in the bucket"
    );

    assert_eq!(server.drain().await, 1);
    let (code, status) = server.get(&format!("/image-pipeline/status/{job}")).await;
    assert_eq!(code, StatusCode::OK, "{status}");
    let media = &status["media"];
    let keys = media_keys(media);
    assert_eq!(
        server
            .stored_keys()
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        keys,
        "the bucket holds exactly the media's objects, nothing in staging"
    );
    let md = keys.iter().find(|k| k.ends_with("/md.webp")).unwrap();
    let bytes = server.admin.storage().get(md).await.unwrap();
    assert_eq!(webp_size(&bytes), (640, 427));

    let id = media["id"].as_str().unwrap();
    assert_eq!(
        server.delete(&format!("/image-pipeline/media/{id}")).await,
        StatusCode::NO_CONTENT
    );
    assert!(
        server.stored_keys().await.is_empty(),
        "delete empties the bucket"
    );
    let (code, _) = server.get(&format!("/image-pipeline/media/{id}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

/// Objects in a bucket carry their type and caching, so a bucket or CDN serving them directly
/// answers as `/files` does (never `binary/octet-stream`).
#[tokio::test]
async fn bucket_objects_carry_their_content_type_and_caching() {
    use object_store::{Attribute, ObjectStoreExt};
    let (schema, bucket) = (PgSchema::create().await, S3Bucket::create());
    let server = server(&schema, &bucket).await;
    let (code, body) = server
        .upload(corpus_bytes("photos/kodim03.png"), "avatar", "types-1")
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(server.drain().await, 1);
    let (_, status) = server.status_of(&body).await;
    let client = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket.name)
        .with_endpoint(&crate::backends::s3_server().endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(crate::backends::S3_ACCESS_KEY)
        .with_secret_access_key(crate::backends::S3_SECRET_KEY)
        .build()
        .unwrap();
    for key in media_keys(&status["media"]) {
        let got = client
            .get(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap();
        let expected = if key.ends_with(".webp") {
            "image/webp"
        } else {
            "image/png"
        };
        let attribute = |a| got.attributes.get(&a).map(|v| v.to_string());
        assert_eq!(
            attribute(Attribute::ContentType).as_deref(),
            Some(expected),
            "{key}"
        );
        assert_eq!(
            attribute(Attribute::CacheControl).as_deref(),
            Some(ximagepipeline::storage::IMMUTABLE),
            "{key}"
        );
    }
}

/// An upload larger than one part goes to staging as an S3 multipart upload, arrives whole, and
/// is processed like any other.
#[tokio::test]
async fn upload_larger_than_a_part_is_staged_in_parts() {
    let (schema, bucket) = (PgSchema::create().await, S3Bucket::create());
    let server = server(&schema, &bucket).await;
    let png = noise_png(1800, 1200);
    assert!(
        png.len() > ximagepipeline::storage::PART_SIZE + 1024,
        "the file must span two parts: {} bytes",
        png.len()
    );
    let (code, body) = server.upload(png.clone(), "content", "big-1").await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let job = body["jobId"].as_str().unwrap();
    let staged = server
        .admin
        .storage()
        .get(&format!("staging/{job}"))
        .await
        .unwrap();
    assert!(
        staged == png,
        "the staged object is the upload, byte for byte"
    );

    server.drain().await;
    let (code, status) = server.get(&format!("/image-pipeline/status/{job}")).await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(status["media"]["width"], 1800);
    let stored = server.stored_keys().await;
    assert!(
        !stored.iter().any(|k| k.starts_with("staging/")),
        "{stored:?}"
    );
}

/// Wrong credentials stop start-up with a message naming the bucket, instead of failing every
/// upload later.
#[tokio::test]
async fn wrong_s3_credentials_stop_start_up() {
    let (schema, bucket) = (PgSchema::create().await, S3Bucket::create());
    let config = bucket.config().replace(
        crate::backends::S3_SECRET_KEY,
        "not-the-secret-at-all-000000",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!("database_url = \"{}\"\n{config}", schema.url()),
    )
    .unwrap();
    let config = Config::load(Some(&file), std::iter::empty(), toml::Table::new()).unwrap();
    let err = ImagePipeline::open(config)
        .await
        .err()
        .expect("start-up must fail");
    let message = err.to_string();
    assert!(
        message.contains(&format!("s3://{}", bucket.name)),
        "names the bucket: {message}"
    );
}

/// Random RGB pixels: a real PNG that does not compress.
fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let img = image::RgbImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [r, g, b, ..] = state.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
