//! The Rust client (`ximagepipeline::client`, feature `client`) against a live server: every
//! operation end to end, and refusals arriving as typed errors with the contract's codes.

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use ximagepipeline::catalog::views::{PendingStatus, StatusView};
use ximagepipeline::client::{Client, ClientError, Page, Upload, UploadBody};

use crate::common::{TestServer, corpus, manifest_row, png};

impl TestServer {
    /// A client of this server.
    pub fn api(&self) -> Client {
        Client::new(&self.url).unwrap()
    }
}

/// Waits for `job` through the client while this task runs the queue: the long poll answers
/// the moment the job ends.
async fn wait_while_draining(server: &TestServer, client: &Client, job: &str) -> StatusView {
    let (status, _) = tokio::join!(client.wait(job, Duration::from_secs(60)), server.drain());
    status.unwrap()
}

fn refusal(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    let e = result.unwrap_err();
    (e.status().unwrap(), e.code().unwrap().to_owned())
}

#[tokio::test]
async fn upload_wait_read_list_and_delete_through_the_client() {
    let server = TestServer::start().await;
    let client = server.api();
    let row = manifest_row("orientation/Portrait_6.jpg");
    let body = UploadBody::from_path(corpus(row.path())).await.unwrap();
    let accepted = client
        .upload(Upload::new("member_photo", "user-7", body))
        .await
        .unwrap();
    assert!(!accepted.replayed);
    assert_eq!(
        accepted.status_url,
        format!("/image-pipeline/status/{}", accepted.job_id)
    );

    let StatusView::Complete(done) = wait_while_draining(&server, &client, &accepted.job_id).await
    else {
        panic!("not complete");
    };
    let media = done.media.expect("media");
    let (width, height) = row.display_size().unwrap();
    assert_eq!((media.width, media.height), (width, height));
    assert_eq!(
        media.urls.keys().collect::<Vec<_>>(),
        ["md", "sm", "xs"],
        "member_photo's variants"
    );
    assert_eq!(media.variants["md"].width, 640);

    assert_eq!(client.media(&media.id).await.unwrap(), media);
    let page = client
        .list_media("member_photo", "user-7", &Page::default())
        .await
        .unwrap();
    assert_eq!(page.media, std::slice::from_ref(&media));
    assert_eq!(page.next_cursor, None);

    assert!(client.delete_media(&media.id).await.unwrap());
    assert_eq!(
        refusal(client.media(&media.id).await),
        (404, "MEDIA_NOT_FOUND".to_owned())
    );
    assert!(!client.delete_media(&media.id).await.unwrap(), "gone");
}

#[tokio::test]
async fn pages_follow_the_cursor_newest_first() {
    let server = TestServer::start().await;
    let client = server.api();
    let mut jobs = Vec::new();
    for side in [40, 50, 60] {
        let body = UploadBody::bytes(png(side, side));
        let accepted = client.upload(Upload::new("avatar", "pager", body)).await;
        jobs.push(accepted.unwrap().job_id);
        server.drain().await;
    }
    let mut page = Page {
        limit: Some(2),
        cursor: None,
    };
    let mut widths = Vec::new();
    loop {
        let got = client.list_media("avatar", "pager", &page).await.unwrap();
        widths.extend(got.media.iter().map(|m| m.width));
        match got.next_cursor {
            Some(next) => page.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(widths, [60, 50, 40]);
}

#[tokio::test]
async fn a_stream_is_uploaded_as_it_comes() {
    let server = TestServer::start().await;
    let client = server.api();
    let bytes = png(300, 200);
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = UploadBody::stream(futures::stream::iter(chunks));
    let accepted = client
        .upload(Upload::new("avatar", "streamer", body))
        .await
        .unwrap();
    let status = wait_while_draining(&server, &client, &accepted.job_id).await;
    let StatusView::Complete(done) = status else {
        panic!("{status:?}");
    };
    assert_eq!(done.media.unwrap().aspect_ratio, "3:2");
}

#[tokio::test]
async fn an_idempotency_key_answers_a_repeat_with_the_first_job() {
    let server = TestServer::start().await;
    let client = server.api();
    let send = || {
        let body = UploadBody::bytes(png(64, 64));
        client.upload(Upload::new("avatar", "again", body).idempotency_key("upload-1"))
    };
    let first = send().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.job_id, first.job_id);
    assert!(!first.replayed && second.replayed);
}

#[tokio::test]
async fn refusals_are_typed_errors_with_the_contract_codes() {
    let server = TestServer::start().await;
    let client = server.api();
    let text = UploadBody::bytes(&b"not an image at all"[..]);
    assert_eq!(
        refusal(client.upload(Upload::new("avatar", "u", text)).await),
        (415, "TYPE_NOT_ALLOWED".to_owned())
    );
    let image = UploadBody::bytes(png(10, 10));
    assert_eq!(
        refusal(client.upload(Upload::new("banner", "u", image)).await),
        (400, "UNKNOWN_SOURCE_TYPE".to_owned())
    );
    assert_eq!(
        refusal(client.status("no-such-job").await),
        (404, "JOB_NOT_FOUND".to_owned())
    );
    let bad_cursor = Page {
        limit: None,
        cursor: Some("nonsense".into()),
    };
    assert_eq!(
        refusal(client.list_media("avatar", "u", &bad_cursor).await),
        (400, "INVALID_CURSOR".to_owned())
    );
    let nowhere = Client::new("http://127.0.0.1:9").unwrap();
    assert!(matches!(
        nowhere.status("x").await,
        Err(ClientError::Http(_))
    ));
    assert!(matches!(
        Client::new("not a url"),
        Err(ClientError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn wait_gives_the_current_status_when_its_deadline_comes_first() {
    let server = TestServer::start().await;
    let client = server.api();
    let body = UploadBody::bytes(png(32, 32));
    let accepted = client
        .upload(Upload::new("avatar", "w", body))
        .await
        .unwrap();
    // No worker runs: the job stays PENDING past the deadline.
    let status = client
        .wait(&accepted.job_id, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(!status.is_final());
    assert!(matches!(
        status,
        StatusView::Pending(ref r) if r.status == PendingStatus::Pending
    ));
}

#[tokio::test]
async fn a_key_and_an_upload_token_are_sent_as_access_control_wants() {
    let key = "xip_client_key_0123456789abcdef";
    let server = TestServer::start_with(&format!(
        "[auth]\ntoken_secret = \"{}\"\n[[auth.keys]]\nname = \"app\"\nsha256 = \"{}\"\n\
         scopes = [\"upload\", \"read\", \"delete\"]\n",
        "s".repeat(40),
        hex::encode(Sha256::digest(key.as_bytes())),
    ))
    .await;
    let anonymous = server.api();
    let body = UploadBody::bytes(png(20, 20));
    assert_eq!(
        refusal(anonymous.upload(Upload::new("avatar", "k", body)).await),
        (401, "UNAUTHORIZED".to_owned())
    );

    let backend = server.api().with_bearer(key);
    let body = UploadBody::bytes(png(20, 20));
    let accepted = backend
        .upload(Upload::new("avatar", "k", body))
        .await
        .unwrap();
    assert!(backend.status(&accepted.job_id).await.is_ok());

    // A browser's way: a token minted for one source, sent as the form's field.
    let token = server
        .pipeline
        .mint_upload_token(&ximagepipeline::TokenRequest {
            source_type: "avatar".into(),
            source_id: "k".into(),
            ..Default::default()
        })
        .unwrap();
    let body = UploadBody::bytes(png(20, 20));
    let upload = Upload::new("avatar", "k", body).token(&token.token);
    assert!(anonymous.upload(upload).await.is_ok());
}
