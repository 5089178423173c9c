//! Memory held by uploads a client leaves hanging, measured on a real `serve` process (its
//! resident set, from /proc) so the figure is the one an operator would see.
//!
//! Each test knows the server has read what the clients sent by looking at the staged
//! objects on disk (a stalled upload's bytes are written through in 64 KiB pieces), not by
//! waiting: the resident set is measured while every upload is in the server's hands.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::corpus_bytes;
use crate::processes::{Env, Server};

/// How long the server may take to read what the clients sent.
const READ_DEADLINE: Duration = Duration::from_secs(120);

/// Uploads are slow on purpose here: no pace rule may cut them off while they are counted.
const PATIENT: &str = "[server]\nupload_grace_secs = 600\nupload_idle_timeout_secs = 600\n";

/// Bytes of the file each stalled upload sends before it stops: four write pieces.
const SENT: usize = 256 * 1024;

/// The server's resident set, in MiB.
fn rss_mib(server: &Server) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.proc.pid())).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib / 1024.0
}

/// Sizes of the objects being staged (object_store writes them as `staging/<job>#<n>`).
fn staging_sizes(data: &Path) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut dirs = vec![data.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().contains("staging") {
                sizes.push(meta.len());
            }
        }
    }
    sizes
}

/// Waits until `count` uploads have had at least `bytes` written through to staging,
/// returning the highest resident set seen meanwhile.
async fn until_staged(env: &Env, server: &Server, count: usize, bytes: u64) -> f64 {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut peak: f64 = 0.0;
    loop {
        peak = peak.max(rss_mib(server));
        let staged = staging_sizes(&env.data_dir());
        if staged.iter().filter(|&&s| s >= bytes).count() >= count {
            return peak.max(rss_mib(server));
        }
        assert!(
            Instant::now() < deadline,
            "the server read {} of {count} uploads in {READ_DEADLINE:?}",
            staged.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The boundary of every form sent here.
const BOUNDARY: &str = "XIPBOUNDARY";

/// The multipart body of an upload of a `len`-byte file, up to the file's first byte, and the
/// whole body's length.
fn form_start(len: usize) -> (Vec<u8>, usize) {
    let preamble = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"sourceType\"\r\n\r\ngallery\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"sourceId\"\r\n\r\nu1\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    );
    let total = preamble.len() + len + format!("\r\n--{BOUNDARY}--\r\n").len();
    (preamble.into_bytes(), total)
}

/// An HTTP/1.1 upload request of a `len`-byte file, up to the file's first byte.
fn http1_start(len: usize) -> Vec<u8> {
    let (preamble, total) = form_start(len);
    let mut head = format!(
        "POST /image-pipeline/upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {total}\r\n\r\n"
    )
    .into_bytes();
    head.extend(preamble);
    head
}

/// The first [`SENT`] bytes of a real photo: a file whose head probes fine, so the upload goes
/// on to stream it.
fn photo_start() -> Vec<u8> {
    let photo = corpus_bytes("photos/munich_subway_6.8mp_canon.jpg");
    photo[..SENT].to_vec()
}

/// A `serve` process (no worker) that has taken one upload, so the resident set measured
/// before an attack already holds what any upload allocates once.
async fn warmed_server() -> (Env, Server) {
    let env = Env::with_backends(PATIENT);
    let server = env.serve("api", true).await;
    let photo = corpus_bytes("photos/hato_6.3mp.jpg");
    server
        .upload_bytes("warm.jpg", photo, "gallery", "warm")
        .await;
    (env, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_stalled_uploads_hold_a_bounded_resident_set() {
    let (env, server) = warmed_server().await;
    let before = rss_mib(&server);

    let mut request = http1_start(10_000_000);
    request.extend(photo_start());
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&server.base["http://".len()..])
            .await
            .unwrap();
        stream.write_all(&request).await.unwrap();
        stalled.push(stream);
    }
    let peak = until_staged(&env, &server, 300, (SENT - 64 * 1024) as u64).await;
    eprintln!("300 stalled uploads: RSS {before:.0} → {peak:.0} MiB");
    // Before this bound existed each held a 5 MiB part buffer and the 1 MiB head:
    // 250 took 769 → 1,819 MiB. Now a 64 KiB head and a 64 KiB write buffer each, plus the
    // connection's buffers: well under 1 MiB an upload.
    assert!(
        peak - before < 200.0,
        "300 stalled uploads took RSS from {before:.0} to {peak:.0} MiB"
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_http2_connection_opens_at_most_32_streams_and_its_stalled_uploads_stay_bounded() {
    let env = Env::with_backends(PATIENT);
    let server = env.serve("api", true).await;
    let before = rss_mib(&server);

    // HTTP/2 cleartext with prior knowledge, as `curl --http2-prior-knowledge` does.
    let tcp = TcpStream::connect(&server.base["http://".len()..])
        .await
        .unwrap();
    let (mut client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let (settings, mut settings_seen) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        std::future::poll_fn(|cx| {
            let polled = std::pin::Pin::new(&mut connection).poll(cx);
            settings.send_replace(Some(connection.max_concurrent_send_streams()));
            polled
        })
        .await
    });
    // The server's SETTINGS arrive with its first frames: ask for something to see them.
    let health =
        axum::http::Request::get(format!("{}/image-pipeline/media?sourceType=x", server.base))
            .body(())
            .unwrap();
    let (answer, _) = client.send_request(health, true).unwrap();
    answer.await.unwrap();
    let cap = *settings_seen
        .wait_for(|s| s.is_some_and(|n| n != 100))
        .await
        .unwrap();
    assert_eq!(
        cap,
        Some(32),
        "the server's SETTINGS_MAX_CONCURRENT_STREAMS"
    );

    // 200 uploads that each send 256 KiB of a photo and stall, each from its own handle (h2
    // lets a handle queue one request past the cap). Only 32 streams open; the other 168 wait
    // on the client's side, costing the server nothing.
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let (mut first_bytes, _) = form_start(10_000_000);
    first_bytes.extend(photo_start());
    let first_bytes = Bytes::from(first_bytes);
    let mut streams = Vec::new();
    for _ in 0..200 {
        let request = axum::http::Request::post(format!("{}/image-pipeline/upload", server.base))
            .header("content-type", &content_type)
            .body(())
            .unwrap();
        let (answer, mut body) = client.clone().send_request(request, false).unwrap();
        body.reserve_capacity(first_bytes.len());
        body.send_data(first_bytes.clone(), false).unwrap();
        streams.push((answer, body));
    }
    let peak = until_staged(&env, &server, 32, (SENT - 64 * 1024) as u64).await;
    eprintln!("200 stalled HTTP/2 streams on one connection: RSS {before:.0} → {peak:.0} MiB");
    assert_eq!(
        staging_sizes(&env.data_dir()).len(),
        32,
        "streams beyond the cap were opened"
    );
    // Before: 200 stalled streams took 29 → 1,227 MiB.
    assert!(
        peak - before < 64.0,
        "200 stalled streams took RSS from {before:.0} to {peak:.0} MiB"
    );
}

/// Sends `request`, `len` zero bytes and the form's end (stopping when the server stops
/// reading) and returns the answer's status line.
async fn upload_junk(addr: String, request: Vec<u8>, len: usize) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.split();
    let send = async {
        write.write_all(&request).await?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len());
            write.write_all(&zeros[..n]).await?;
            left -= n;
        }
        write
            .write_all(format!("\r\n--{BOUNDARY}--\r\n").as_bytes())
            .await?;
        std::io::Result::Ok(())
    };
    let mut answer = Vec::new();
    let receive = read.read_to_end(&mut answer);
    // The server may answer before the body ends and close: the send then fails, which is fine.
    let (_, received) = tokio::join!(send, receive);
    let _ = received;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_49_mib_junk_jpegs_leave_the_resident_set_flat() {
    let (_env, server) = warmed_server().await;
    let before = rss_mib(&server);

    const JUNK: usize = 49 << 20;
    let mut request = http1_start(JUNK);
    // A JPEG signature, then zeros to the end.
    request.extend([0xFF, 0xD8, 0xFF]);
    let addr = server.base["http://".len()..].to_owned();
    let mut uploads = tokio::task::JoinSet::new();
    for _ in 0..40 {
        uploads.spawn(upload_junk(addr.clone(), request.clone(), JUNK - 3));
    }
    let mut peak = rss_mib(&server);
    while let Some(status) = uploads.join_next().await {
        let status = status.unwrap();
        assert!(
            status.contains(" 422 "),
            "a junk JPEG was answered {status:?}"
        );
        peak = peak.max(rss_mib(&server));
    }
    eprintln!("40 junk JPEGs of 49 MiB: RSS {before:.0} → {peak:.0} MiB");
    // Before: 569 → 2,296 MiB (each re-read whole into memory).
    assert!(
        peak - before < 64.0,
        "40 junk JPEGs took RSS from {before:.0} to {peak:.0} MiB"
    );
}
