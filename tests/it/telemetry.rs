//! OpenTelemetry export (the `otel` feature): real API and worker processes send their spans
//! over OTLP/HTTP to a receiver started here, which decodes them as a collector would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};

use crate::common::corpus;
use crate::processes::Env;

/// How long a process may take to stop (and send its last spans).
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// One exported span, as far as the test looks at it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP receiver on a free loopback port: keeps every span of every export it gets.
async fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

/// Decodes an `ExportTraceServiceRequest` (protobuf) and answers as a collector does.
async fn receive(
    State(spans): State<Arc<Mutex<Vec<Span>>>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    let mut kept = spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            kept.push(Span {
                service: service.clone(),
                name: span.name,
                trace: hex::encode(span.trace_id),
                id: hex::encode(span.span_id),
                parent: hex::encode(span.parent_span_id),
                attributes: span
                    .attributes
                    .iter()
                    .map(|a| {
                        let value = a.value.as_ref().and_then(|v| v.value.as_ref());
                        (a.key.clone(), text(value))
                    })
                    .collect(),
            });
        }
    }
    (StatusCode::OK, "")
}

fn text(value: Option<&Any>) -> String {
    match value {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// Uploads a photo with the given extra headers; the job id.
async fn upload(server: &crate::processes::Server, headers: &[(&str, &str)]) -> String {
    let bytes = std::fs::read(corpus("valid/jpeg_progressive_cat.jpg")).unwrap();
    let form = Form::new()
        .text("sourceType", "avatar")
        .text("sourceId", "traced")
        .part("file", Part::bytes(bytes).file_name("cat.jpg"));
    let mut request = server
        .client
        .post(format!("{}/image-pipeline/upload", server.base))
        .multipart(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let res = request.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = res.json().await.unwrap();
    body["jobId"].as_str().unwrap().to_owned()
}

/// The one span named `name` whose attribute `key` is `value`.
fn find<'a>(spans: &'a [Span], name: &str, key: &str, value: &str) -> &'a Span {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && s.attributes.get(key).map(String::as_str) == Some(value))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "spans {name} with {key}={value}: {spans:#?}"
    );
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_one_trace_across_the_api_and_worker_processes() {
    let (endpoint, spans) = receiver().await;
    let env = Env::new().with_var("XIP_OTLP_ENDPOINT", &endpoint);
    let mut api = env.serve("api", true).await;
    let mut worker = env.worker("worker");

    // The caller's trace is joined; without one, the upload starts its own.
    let (trace, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace}-{caller_span}-01");
    let joined = upload(
        &api,
        &[
            ("traceparent", &traceparent),
            ("x-request-id", "otel-joined"),
        ],
    )
    .await;
    let own = upload(&api, &[("x-request-id", "otel-own")]).await;
    for job in [&joined, &own] {
        assert_eq!(api.wait_end(job).await["status"], "COMPLETE");
    }
    // Stopping sends what is still queued.
    assert!(api.proc.terminate(STOP_DEADLINE).await.success());
    assert!(worker.terminate(STOP_DEADLINE).await.success());

    // The exporter's own HTTP client logs below `info`: the filter keeps it out.
    for name in ["api", "worker"] {
        let log = env.log(name);
        assert!(
            !log.contains("TRACE") && !log.contains("DEBUG"),
            "{name}: {log}"
        );
    }
    let spans = spans.lock().unwrap().clone();
    assert!(
        spans.iter().all(|s| s.service == "ximagepipeline"),
        "{spans:#?}"
    );
    let request = find(&spans, "request", "id", "otel-joined");
    assert_eq!(request.trace, trace);
    assert_eq!(request.parent, caller_span);
    assert_eq!(request.attributes["route"], "/image-pipeline/upload");
    for (request_id, expected_trace) in [("otel-joined", Some(trace)), ("otel-own", None)] {
        let request = find(&spans, "request", "id", request_id);
        let job = find(&spans, "job", "request", request_id);
        if let Some(trace) = expected_trace {
            assert_eq!(job.trace, trace);
        }
        assert_eq!(
            job.trace, request.trace,
            "the worker continues the upload's trace"
        );
        assert_eq!(job.parent, request.id);
        for stage in ["prepare", "variants", "store"] {
            let stages: Vec<_> = spans
                .iter()
                .filter(|s| s.name == stage && s.parent == job.id)
                .collect();
            assert_eq!(stages.len(), 1, "{stage} of {request_id}: {spans:#?}");
            assert_eq!(stages[0].trace, job.trace);
        }
    }
}
