//! Webhooks: a receiver started here checks every delivery's signature and counts them. A
//! job's end is delivered signed, with the status body; a failing receiver gets retries until
//! it answers 2xx; private targets are refused unless allowed; an upload may name its own
//! `callbackUrl` on an allowed host; a worker killed while sending leaves the delivery to be
//! sent again once the service is back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::sync::Notify;
use ximagepipeline::queue::DeliveryStatus;
use ximagepipeline::webhooks::sign;

use crate::common::{TestServer, corpus_bytes, png};
use crate::processes::Env;

const SECRET: &str = "whsec_test_0123456789abcdef0123456789";

/// One request the receiver got, its signature checked.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) delivery: String,
    pub(crate) body: Value,
    /// When it arrived (milliseconds since the epoch).
    pub(crate) at: i64,
}

/// What the receiver answers, in order; 200 once the script runs out. `None` never answers.
#[derive(Default)]
pub(crate) struct Receiver {
    script: Mutex<VecDeque<Option<u16>>>,
    got: Mutex<Vec<Received>>,
    arrived: Notify,
    /// Where a 3xx answer points.
    redirect_to: Mutex<Option<String>>,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let signature = headers["ximagepipeline-signature"].to_str().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        sign::verify(SECRET, signature, &body, now, 300),
        "a delivery with a bad signature: {signature}"
    );
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&body).unwrap();
    let delivery = headers["ximagepipeline-delivery"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(body["deliveryId"], delivery.as_str());
    let at = ximagepipeline::queue::now_ms();
    let received = Received { delivery, body, at };
    receiver.got.lock().unwrap().push(received);
    receiver.arrived.notify_waiters();
    let answer = receiver
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Some(200));
    let status = match answer {
        Some(code) => StatusCode::from_u16(code).unwrap(),
        None => std::future::pending().await,
    };
    let location = receiver.redirect_to.lock().unwrap().clone();
    match location.filter(|_| status.is_redirection()) {
        Some(to) => (status, [("location", to)]).into_response(),
        None => status.into_response(),
    }
}

/// A receiver on a free loopback port answering `script`; its URL.
pub(crate) async fn start_receiver(script: &[Option<u16>]) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    receiver
        .script
        .lock()
        .unwrap()
        .extend(script.iter().copied());
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, receiver)
}

impl Receiver {
    pub(crate) fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to a generous deadline) until `n` requests have arrived.
    pub(crate) async fn until(&self, n: usize) -> Vec<Received> {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let arrived = self.arrived.notified();
                if self.got.lock().unwrap().len() >= n {
                    return self.got();
                }
                arrived.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} deliveries did not arrive: {:?}", self.got()))
    }
}

pub(crate) fn config(url: &str, extra: &str) -> String {
    format!(
        "[webhooks]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nallow_private_targets = true\n\
         first_retry_secs = 0\n{extra}"
    )
}

/// The newest delivery of the server's outbox.
async fn newest_delivery(server: &TestServer) -> ximagepipeline::queue::Delivery {
    let newest = server.admin.jobs().list_deliveries(None, 1).await.unwrap();
    newest.into_iter().next().expect("a delivery")
}

#[tokio::test]
async fn a_jobs_end_is_delivered_signed_with_its_status_body() {
    let (url, receiver) = start_receiver(&[]).await;
    let server = TestServer::start_with(&config(&url, "")).await;
    let (status, upload) = server.upload(png(64, 48), "avatar", "u1").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    server.drain().await;
    let broken = server
        .queue_unchecked(corpus_bytes("invalid/truncated_40pct.jpg"), "gallery")
        .await;
    server.drain().await;
    assert_eq!(server.admin.send_due_webhooks().await, 2);

    let got = receiver.got();
    assert_eq!(got.len(), 2);
    let (_, status_body) = server.status_of(&upload).await;
    let completed = got
        .iter()
        .find(|r| r.body["event"] == "job.completed")
        .unwrap();
    assert_eq!(
        completed.body["data"], status_body,
        "the status route's body"
    );
    assert!(completed.body["createdAt"].as_str().unwrap().contains('T'));
    let failed = got
        .iter()
        .find(|r| r.body["event"] == "job.failed")
        .unwrap();
    assert_eq!(failed.body["data"]["jobId"], broken.to_string());
    assert_eq!(failed.body["data"]["code"], "UNREADABLE_IMAGE");

    let deliveries = server.admin.jobs().list_deliveries(None, 10).await.unwrap();
    assert!(
        deliveries
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered && d.attempts == 1)
    );
    assert_eq!(server.admin.send_due_webhooks().await, 0, "delivered once");
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_until_it_answers() {
    let (url, receiver) = start_receiver(&[Some(500), Some(500)]).await;
    let server = TestServer::start_with(&config(&url, "")).await;
    server.process(png(32, 32), "avatar").await;
    assert_eq!(server.admin.send_due_webhooks().await, 3);
    let got = receiver.got();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|r| r.delivery == got[0].delivery),
        "one delivery, three attempts"
    );
    let delivery = &server.admin.jobs().list_deliveries(None, 1).await.unwrap()[0];
    assert_eq!(
        (delivery.status, delivery.attempts),
        (DeliveryStatus::Delivered, 3)
    );

    // Past max_attempts it is given up, and an operator can send it again.
    let (url, receiver) = start_receiver(&[Some(503), Some(503)]).await;
    let server = TestServer::start_with(&config(&url, "max_attempts = 2\n")).await;
    server.process(png(32, 32), "avatar").await;
    assert_eq!(server.admin.send_due_webhooks().await, 2);
    let delivery = newest_delivery(&server).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(
        delivery.last_error.as_deref(),
        Some("the receiver answered 503 Service Unavailable")
    );
    let now = ximagepipeline::queue::now_ms();
    assert!(
        server
            .admin
            .jobs()
            .resend_delivery(&delivery.id, now)
            .await
            .unwrap()
    );
    assert_eq!(server.admin.send_due_webhooks().await, 1);
    assert_eq!(receiver.got().len(), 3);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (elsewhere_url, elsewhere) = start_receiver(&[]).await;
    let (url, receiver) = start_receiver(&[Some(302)]).await;
    *receiver.redirect_to.lock().unwrap() = Some(elsewhere_url);
    let server = TestServer::start_with(&config(&url, "max_attempts = 1\n")).await;
    server.process(png(32, 32), "avatar").await;
    assert_eq!(server.admin.send_due_webhooks().await, 1);
    assert_eq!(receiver.got().len(), 1);
    assert!(elsewhere.got().is_empty(), "the redirect was followed");
    let delivery = newest_delivery(&server).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(
        delivery.last_error.as_deref(),
        Some("the receiver answered 302 Found")
    );
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let (url, receiver) = start_receiver(&[]).await;
    let extra = "max_attempts = 1\n";
    let server = TestServer::start_with(&config(&url, extra).replace(
        "allow_private_targets = true",
        "allow_private_targets = false",
    ))
    .await;
    server.process(png(32, 32), "avatar").await;
    assert_eq!(server.admin.send_due_webhooks().await, 1);
    assert!(receiver.got().is_empty());
    let delivery = newest_delivery(&server).await;
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    let error = delivery.last_error.unwrap();
    assert!(error.contains("not a public address"), "{error}");
}

async fn upload_with_callback(server: &TestServer, callback: &str) -> (StatusCode, Value) {
    let form = Form::new()
        .text("sourceType", "avatar")
        .text("sourceId", "u1")
        .text("callbackUrl", callback.to_owned())
        .part("file", Part::bytes(png(20, 20)).file_name("a.png"));
    server.post_form(form).await
}

#[tokio::test]
async fn an_upload_may_name_its_own_receiver_on_an_allowed_host() {
    let (app_url, app) = start_receiver(&[]).await;
    let (own_url, own) = start_receiver(&[]).await;
    let own_url = own_url.replace("127.0.0.1", "localhost");
    let server = TestServer::start_with(&config(
        &app_url,
        "allowed_callback_hosts = [\"LOCALHOST\"]\n",
    ))
    .await;
    let (status, body) = upload_with_callback(&server, &own_url).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for refused in ["http://127.0.0.1:9/hook", "ftp://localhost/x", "not a url"] {
        let (status, body) = upload_with_callback(&server, refused).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}: {body}");
        assert_eq!(body["code"], "INVALID_CALLBACK_URL");
    }
    server.drain().await;
    server.admin.send_due_webhooks().await;
    assert_eq!(own.got().len(), 1);
    assert!(app.got().is_empty());

    // Without [webhooks], a callbackUrl is refused.
    let plain = TestServer::start().await;
    let (status, body) = upload_with_callback(&plain, &own_url).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cut_off_by_a_killed_worker_arrives_once_the_service_is_back() {
    // The first request is never answered: the worker is killed while it waits.
    let (url, receiver) = start_receiver(&[None]).await;
    let env = Env::with_backends(&config(&url, "timeout_secs = 1\n"));
    let api = env.serve("api", true).await;
    let mut worker = env.worker("worker-1");
    let job = api.upload_bytes("a.png", png(40, 40), "avatar", "u1").await;
    assert_eq!(api.wait_end(&job).await["status"], "COMPLETE");
    let first = receiver.until(1).await;
    worker.kill().await;

    let _back = env.worker("worker-2");
    let got = receiver.until(2).await;
    assert_eq!(
        got[1].delivery, first[0].delivery,
        "the same delivery, sent again"
    );
    assert_eq!(got[1].body["data"]["status"], "COMPLETE");
    let deliveries = env
        .pipeline()
        .await
        .admin()
        .jobs()
        .list_deliveries(None, 5)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
}
