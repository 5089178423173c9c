//! Where the binary's logs and spans go: lines on standard error in `log_format`, filtered by
//! `RUST_LOG` (default `info`); with the `otel` feature, spans also go to an OpenTelemetry
//! collector over OTLP/HTTP when `otlp_endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, names one.
//!
//! Spans are exported in batches from the exporter's own thread, so a slow or absent collector
//! costs the service a bounded queue (spans past it are dropped), never a request's time.

use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};
use ximagepipeline::Config;
use ximagepipeline::config::LogFormat;

/// The running exporter, flushed by [`flush`] when the command ends.
static EXPORTER: Mutex<Option<Exporter>> = Mutex::new(None);

/// Starts logging, and span export where configured. Only the first call sets it up (the
/// tests of the library load configurations many times in one process).
pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (json, text) = match config.log_format {
        LogFormat::Json => (Some(fmt::layer().json().flatten_event(true)), None),
        LogFormat::Text => (None, Some(fmt::layer().with_ansi(ansi))),
    };
    let exporter = Exporter::start(config)?;
    // The filter is global: what it refuses reaches no layer, the exporter's included.
    let installed = tracing_subscriber::registry()
        .with(span_layer(exporter.as_ref()))
        .with(filter)
        .with(json.map(|l| l.with_writer(std::io::stderr)))
        .with(text.map(|l| l.with_writer(std::io::stderr)))
        .try_init()
        .is_ok();
    if installed && let Some(exporter) = exporter {
        tracing::info!(
            endpoint = exporter.endpoint(),
            "exporting spans over OTLP/HTTP"
        );
        *EXPORTER.lock().unwrap_or_else(|e| e.into_inner()) = Some(exporter);
    }
    Ok(())
}

/// Sends the spans still queued and stops the exporter: called once the command has ended,
/// outside the async runtime (the exporter's client blocks).
pub fn flush() {
    let exporter = EXPORTER.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
}

/// The endpoint the configuration or the standard variables name, if any.
fn endpoint(config: &Config) -> Option<String> {
    config
        .otlp_endpoint
        .as_ref()
        .map(|base| format!("{base}/v1/traces"))
        .or_else(|| {
            [
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ]
            .into_iter()
            .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        })
}

/// The layer that hands spans to the exporter, when there is one.
#[cfg(feature = "otel")]
fn span_layer(
    exporter: Option<&Exporter>,
) -> Option<
    tracing_opentelemetry::OpenTelemetryLayer<
        tracing_subscriber::Registry,
        opentelemetry_sdk::trace::SdkTracer,
    >,
> {
    use opentelemetry::trace::TracerProvider;
    let tracer = exporter?.provider.tracer("ximagepipeline");
    Some(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Without the `otel` feature there is no span layer.
#[cfg(not(feature = "otel"))]
fn span_layer(_exporter: Option<&Exporter>) -> Option<tracing_subscriber::layer::Identity> {
    None
}

#[cfg(feature = "otel")]
struct Exporter {
    endpoint: String,
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

#[cfg(feature = "otel")]
impl Exporter {
    /// The exporter to `config`'s endpoint, or `None` when none is named.
    fn start(config: &Config) -> anyhow::Result<Option<Exporter>> {
        use anyhow::Context;
        use opentelemetry_otlp::WithExportConfig;

        let Some(endpoint) = endpoint(config) else {
            return Ok(None);
        };
        let mut spans = opentelemetry_otlp::SpanExporter::builder().with_http();
        // Given in the configuration, it is the base URL; the variables are used as the
        // OpenTelemetry specification says (the exporter reads them itself).
        if config.otlp_endpoint.is_some() {
            spans = spans.with_endpoint(endpoint.clone());
        }
        let spans = spans
            .build()
            .with_context(|| format!("cannot export spans to {endpoint}"))?;
        let service =
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "ximagepipeline".into());
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(spans)
            .with_resource(resource)
            .build();
        Ok(Some(Exporter { endpoint, provider }))
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("could not send the last spans to {}: {e}", self.endpoint);
        }
    }
}

/// Without the `otel` feature no exporter can exist.
#[cfg(not(feature = "otel"))]
enum Exporter {}

#[cfg(not(feature = "otel"))]
impl Exporter {
    /// Refuses a configured endpoint; the standard variables, which may be set for other
    /// programs, are only warned about.
    fn start(config: &Config) -> anyhow::Result<Option<Exporter>> {
        if let Some(endpoint) = &config.otlp_endpoint {
            anyhow::bail!(
                "otlp_endpoint is {endpoint}, but this build cannot export spans: build it with \
                 `--features otel`"
            );
        }
        if let Some(endpoint) = endpoint(config) {
            eprintln!(
                "warning: OTEL_EXPORTER_OTLP_* names {endpoint}, but this build cannot export \
                 spans (build it with `--features otel`)"
            );
        }
        Ok(None)
    }

    fn endpoint(&self) -> &str {
        match *self {}
    }

    fn shutdown(self) {
        match self {}
    }
}
