//! One trace per upload, across processes (the `otel` feature): a caller's W3C `traceparent`
//! becomes the parent of the request's span, the upload's own is stored on its job, and the
//! worker's span continues it, whichever process runs the job.
//!
//! The spans are `tracing` spans; they reach OpenTelemetry through the subscriber's
//! `tracing-opentelemetry` layer (the binary's `otlp_endpoint`, or a host app's own). Without
//! the feature, or with no such layer, these functions do nothing.

pub use context::{continue_from, join_caller, parent_of};

#[cfg(feature = "otel")]
mod context {
    use std::collections::HashMap;

    use axum::http::HeaderMap;
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    /// Makes the caller's trace, when its headers carry a valid `traceparent`, the parent of
    /// `span`.
    pub fn join_caller(span: &Span, headers: &HeaderMap) {
        adopt(
            span,
            TraceContextPropagator::new().extract(&Headers(headers)),
        );
    }

    /// The `traceparent` naming `span`, to be stored and continued elsewhere; `None` when it
    /// is not traced.
    pub fn parent_of(span: &Span) -> Option<String> {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        carrier.remove("traceparent")
    }

    /// Makes `span` a child of a stored `traceparent`, when it is a valid one.
    pub fn continue_from(span: &Span, traceparent: Option<&str>) {
        if let Some(traceparent) = traceparent {
            let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
            adopt(span, TraceContextPropagator::new().extract(&carrier));
        }
    }

    fn adopt(span: &Span, parent: opentelemetry::Context) {
        if parent.span().span_context().is_valid() {
            // Fails only when no OpenTelemetry layer is installed: nothing is traced then.
            let _ = span.set_parent(parent);
        }
    }

    /// Request headers as the propagator reads them.
    struct Headers<'a>(&'a HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
}

#[cfg(not(feature = "otel"))]
mod context {
    use axum::http::HeaderMap;
    use tracing::Span;

    pub fn join_caller(_span: &Span, _headers: &HeaderMap) {}

    pub fn parent_of(_span: &Span) -> Option<String> {
        None
    }

    pub fn continue_from(_span: &Span, _traceparent: Option<&str>) {}
}
