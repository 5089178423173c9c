-- The W3C traceparent of the request that uploaded a job (with the `otel` feature), so the
-- worker's spans join the upload's trace wherever the worker runs.
ALTER TABLE jobs ADD COLUMN trace_parent TEXT;
