//! `serve` under abuse, over real sockets: slow heads, idle and surplus connections, trickled
//! uploads and panicking handlers are cut off or contained while other clients are served.
//!
//! Where time is the behaviour (a timeout), the configured figure is one or two seconds and the
//! assertion allows several times that, so a loaded machine cannot fail a correct server.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestServer, png};

/// Generous bound on "cut off soon after a one- or two-second limit".
const CUT_OFF_WITHIN: Duration = Duration::from_secs(15);

fn addr(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_request_heads_are_cut_off_while_other_clients_are_served() {
    let server = TestServer::start_with("[server]\nheader_read_timeout_secs = 1\n").await;
    let started = Instant::now();
    let mut lorises = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
        lorises.push(tokio::spawn(async move {
            // A head that never ends: one more header byte every 100 ms.
            let _ = stream
                .write_all(b"GET /image-pipeline/media HTTP/1.1\r\nX-A: ")
                .await;
            let mut buf = [0u8; 64];
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    },
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        if stream.write_all(b"a").await.is_err() {
                            return;
                        }
                    }
                }
            }
        }));
    }
    // Meanwhile an ordinary client is answered.
    let (status, body) = server.get("/image-pipeline/status/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "JOB_NOT_FOUND");

    for loris in lorises {
        tokio::time::timeout(CUT_OFF_WITHIN, loris)
            .await
            .expect("a slow head was still connected long after the header timeout")
            .unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let server =
        TestServer::start_with("[server]\nidle_timeout_secs = 1\nheader_read_timeout_secs = 60\n")
            .await;
    let mut stream = TcpStream::connect(addr(&server)).await.unwrap();
    let started = Instant::now();
    let received = tokio::time::timeout(CUT_OFF_WITHIN, read_to_close(&mut stream))
        .await
        .expect("an idle connection stayed open");
    assert!(received.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_stop_an_upload() {
    let server = TestServer::start().await;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(addr(&server)).await.unwrap());
    }
    let (status, body) = server.upload(png(64, 48), "avatar", "u1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The idle ones are still held open (the defaults allow 4,096), not refused.
    let mut probe = [0u8; 1];
    let still_open = idle.last_mut().unwrap().try_read(&mut probe);
    assert!(
        matches!(still_open, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{still_open:?}"
    );
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_until_one_closes() {
    let server = TestServer::start_with("[server]\nmax_connections = 4\n").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr(&server)).await.unwrap());
    }
    // Make sure the server accepted all four: each answers a request.
    for stream in &mut held {
        stream
            .write_all(b"GET /image-pipeline/status/x HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 404");
    }
    let waiting = tokio::spawn({
        let url = format!("{}/image-pipeline/status/y", server.url);
        async move { reqwest::get(url).await.map(|r| r.status()) }
    });
    // While four are held, the fifth is not served (it would be at once without the cap).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a fifth connection was served past the cap"
    );
    drop(held.pop());
    let status = tokio::time::timeout(CUT_OFF_WITHIN, waiting)
        .await
        .expect("the waiting client was not served after a connection closed")
        .unwrap()
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A multipart upload head whose file part is declared `len` bytes long.
fn upload_head(len: usize) -> (Vec<u8>, Vec<u8>) {
    let boundary = "XIPBOUNDARY";
    let preamble = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"sourceType\"\r\n\r\navatar\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"sourceId\"\r\n\r\nu1\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    );
    let epilogue = format!("\r\n--{boundary}--\r\n");
    let total = preamble.len() + len + epilogue.len();
    let head = format!(
        "POST /image-pipeline/upload HTTP/1.1\r\nHost: t\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n{preamble}"
    );
    (head.into_bytes(), epilogue.into_bytes())
}

/// Sends `head`, then `piece` every `every` until the server answers; returns the answer.
async fn trickle_upload(server: &TestServer, head: &[u8], piece: &[u8], every: Duration) -> String {
    let mut stream = TcpStream::connect(addr(server)).await.unwrap();
    stream.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(every), if !piece.is_empty() => {
                if stream.write_all(piece).await.is_err() {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_upload_slower_than_the_minimum_rate_is_cut_off_with_408() {
    let server = TestServer::start_with(
        "[server]\nupload_grace_secs = 1\nupload_min_bytes_per_sec = 1000\n",
    )
    .await;
    let (head, _) = upload_head(1_000_000);
    // 20 bytes every 100 ms: 200 B/s, never idle, far under 1,000 B/s.
    let answer = tokio::time::timeout(
        CUT_OFF_WITHIN,
        trickle_upload(&server, &head, &[0; 20], Duration::from_millis(100)),
    )
    .await
    .expect("a trickled upload was not cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert_eq!(server.stored_keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn an_upload_that_stops_is_cut_off_with_408() {
    let server =
        TestServer::start_with("[server]\nupload_idle_timeout_secs = 1\nupload_grace_secs = 600\n")
            .await;
    let (mut head, _) = upload_head(1_000_000);
    head.extend_from_slice(&[0; 1000]);
    let answer = tokio::time::timeout(
        CUT_OFF_WITHIN,
        trickle_upload(&server, &head, &[], Duration::from_secs(1)),
    )
    .await
    .expect("a stalled upload was not cut off");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(server.stored_keys().await, Vec::<String>::new());
}

async fn boom() -> &'static str {
    panic!("a defect")
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_lives() {
    use axum::routing::get;
    let server = TestServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = ximagepipeline::http::catch_panics(
        axum::Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" })),
    );
    let config = server.pipeline.config().server.clone();
    tokio::spawn(async move {
        ximagepipeline::http::serve::serve(listener, router, &config, std::future::pending())
            .await
            .unwrap();
    });
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let res = client.get(format!("{url}/boom")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "INTERNAL");
        assert!(
            !body["error"].as_str().unwrap().contains("defect"),
            "{body}"
        );
    }
    let fine = client.get(format!("{url}/fine")).send().await.unwrap();
    assert_eq!(fine.text().await.unwrap(), "fine");
}

/// Opens an upload that sends its head and the first `sent` bytes of the file, then stalls.
async fn stalled_upload(server: &TestServer, sent: usize) -> TcpStream {
    let (mut head, _) = upload_head(10_000_000);
    head.extend(std::iter::repeat_n(0u8, sent));
    let mut stream = TcpStream::connect(addr(server)).await.unwrap();
    stream.write_all(&head).await.unwrap();
    stream
}

#[tokio::test]
async fn past_the_upload_memory_budget_uploads_get_503_busy_until_one_ends() {
    // Two local uploads' worth (64 KiB head + 64 KiB write buffer each).
    let server = TestServer::start_with("[server]\nupload_memory_bytes = 262144\n").await;
    let stalled = [
        stalled_upload(&server, 1000).await,
        stalled_upload(&server, 1000).await,
    ];
    // Once both stalled uploads hold their share, a third is refused at once.
    let deadline = Instant::now() + CUT_OFF_WITHIN;
    let refused = loop {
        let form = reqwest::multipart::Form::new()
            .text("sourceType", "avatar")
            .text("sourceId", "u1")
            .part(
                "file",
                reqwest::multipart::Part::bytes(png(8, 8)).file_name("a.png"),
            );
        let res = server
            .client
            .post(format!("{}/image-pipeline/upload", server.url))
            .multipart(form)
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            break res;
        }
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert!(Instant::now() < deadline, "the budget never ran out");
        tokio::task::yield_now().await;
    };
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "BUSY");

    // When the stalled clients go away, their share comes back.
    drop(stalled);
    let deadline = Instant::now() + CUT_OFF_WITHIN;
    loop {
        let (status, body) = server.upload(png(8, 8), "avatar", "u2").await;
        if status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(body["code"], "BUSY");
        assert!(Instant::now() < deadline, "the budget was not given back");
        tokio::task::yield_now().await;
    }
}
