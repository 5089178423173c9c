//! Every default the service runs with: the spec's section 4 defaults, in one place.
//!
//! Most are a TOML text in the same form as a user's file, so one merge rule serves defaults,
//! file, environment and flags alike (see `Config::load`). The rest cannot be written there:
//! defaults of fields inside tables the user names (`[source_types.<name>]`,
//! `[moderation.http]`), values derived from another key (`database_url` from `data_dir`), and
//! the command line's own.

/// Every default the service runs with when nothing else is said.
pub const DEFAULTS: &str = r#"
listen = "127.0.0.1:3000"
data_dir = "./data"
route_prefix = "/image-pipeline"
# demo_page = true|false: the upload page at `/` (`serve`). Unset, it is on with local storage
# and access control off (a machine of one's own), off otherwise.
# Log lines as "text" (for people) or "json" (one object per line, for a log store).
log_format = "text"
# otlp_endpoint = "http://127.0.0.1:4318" exports spans to an OpenTelemetry collector (the
# `otel` feature); unset, the standard OTEL_EXPORTER_OTLP_ENDPOINT does the same.
max_file_size = 52428800
# How long an upload's Idempotency-Key answers its repeats with the first job.
idempotency_window_secs = 86400
# The contract's types; a build without the `heif` feature leaves out AVIF and HEIC (and says so
# at start-up). TIFF is supported but opt-in.
allowed_mime_types = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", "image/heic"]
max_pixels = 100000000
max_side = 20000
# The work budget: 512 MiB decoded (a 100-megapixel 8-bit RGBA image is 381 MiB). A job peaks
# at about 3.5× its decoded size (1.32 GiB measured for that image), so `concurrency` jobs fit
# in concurrency × 1.8 GiB.
max_decoded_bytes = 536870912
staging_prefix = "staging"
media_prefix = "media"
originals_prefix = "originals"

[variants.xs]
width = 64
height = 64
fit = "cover"

[variants.sm]
width = 256
height = 256
fit = "cover"

[variants.md]
width = 640
fit = "inside"

[variants.lg]
width = 1280
fit = "inside"

[variants.xl]
width = 1920
fit = "inside"

[variants.2xl]
width = 2560
fit = "inside"

[source_types.avatar]
variants = ["xs", "sm"]
quality = 85

[source_types.member_photo]
variants = ["xs", "sm", "md"]
quality = 85

[source_types.gallery]
variants = ["md", "lg", "xl"]
quality = 80

[source_types.hero]
variants = ["lg", "xl", "2xl"]
quality = 80

[source_types.content]
variants = ["sm", "md", "lg"]
quality = 80

[server]
# Sized for a 1,024-descriptor soft limit raised to the usual hard limit; see README.
max_connections = 4096
header_read_timeout_secs = 10
idle_timeout_secs = 60
http2_max_streams = 32
upload_idle_timeout_secs = 30
# 256 kbit/s: a 50 MB upload may take up to 27 minutes.
upload_min_bytes_per_sec = 32768
upload_grace_secs = 10
# Memory all uploads in flight may hold (each holds a 64 KiB head and one write buffer: 64 KiB
# on local storage, a 5 MiB part on S3): 2,048 uploads at once locally, 51 on S3.
upload_memory_bytes = 268435456
shutdown_grace_secs = 30

[cors]
# Origins of browser pages that may call the API ("https://app.example.com"), or ["*"] for
# any; empty: CORS off, and browsers refuse every cross-origin call.
allowed_origins = []
allowed_methods = ["GET", "POST", "DELETE"]
# authorization carries an API key or an upload token; idempotency-key makes a retried upload
# one job; x-request-id names the request in the logs.
allowed_headers = ["authorization", "content-type", "idempotency-key", "x-request-id"]
# What a page may read of an answer beyond the simple headers: when to come back after a 429/503
# (or a 202), whether an upload was a repeat, the request's id.
exposed_headers = ["retry-after", "idempotent-replayed", "x-request-id"]
# Cookies; never with the "*" origin.
allow_credentials = false
max_age_secs = 600

[fairness]
# Pending jobs (PENDING or PROCESSING) one sourceType + sourceId may have: a gallery import of
# a hundred photos at once is fine, a loop filling the queue for one source is not.
max_pending_per_source = 100
# Pending jobs one client address may have (every user behind one NAT counts together).
max_pending_per_client = 1000
# Proxies whose X-Forwarded-For names the client (plain IP addresses).
trusted_proxies = []

[worker]
max_attempts = 3
heartbeat_interval_secs = 5
stale_timeout_secs = 60
retry_base_delay_secs = 2
retry_max_delay_secs = 300
# How long a job waits out storage or database outages (which use no attempt) before it ends
# FAILED, keeping its upload for an operator's requeue.
transient_window_secs = 86400
idle_poll_secs = 2
staging_grace_secs = 3600
staging_sweep_secs = 60
shutdown_timeout_secs = 60
job_timeout_secs = 120.0
# Ended jobs (COMPLETE, REJECTED, FAILED) are removed this long after they ended; their media
# stay until deleted. 0 keeps them for ever.
job_retention_days = 30

[database]
max_connections = 10
min_connections = 0
acquire_timeout_secs = 30
# An HTTP request waits this long for a connection, then answers 503 QUEUE_UNAVAILABLE.
request_acquire_timeout_secs = 3.0
idle_timeout_secs = 600
migrate_on_start = true

[s3]
"#;

/// The embedded database's file under `data_dir`, when `database_url` is not set.
pub const DATABASE_FILE: &str = "ximagepipeline.db";

/// The local object folder under `data_dir`, when `storage_url` is not set.
pub const OBJECTS_FOLDER: &str = "objects";

/// The region of an S3 bucket's default public URL when neither `[s3] region` nor
/// `AWS_REGION` says one (AWS's own default).
pub const S3_REGION: &str = "us-east-1";

/// `[worker] concurrency` when the number of cores cannot be read (it defaults to one per core).
pub const CONCURRENCY_UNKNOWN_CORES: usize = 2;

/// `[moderation.thresholds]` when absent: open_nsfw's authors call scores above 0.8 very
/// likely NSFW.
pub const MODERATION_THRESHOLDS: &[(&str, f64)] = &[("nsfw", 0.8)];

/// Files `ximagepipeline process` works on at once (`--jobs`).
pub const PROCESS_JOBS: usize = 1;

/// `[source_types.<name>] format`: the only output format.
pub fn source_type_format() -> String {
    "webp".to_owned()
}

/// `[source_types.<name>] keep_original`: originals are kept (metadata stripped).
pub fn keep_original() -> bool {
    true
}

/// `[moderation] fail_open`: a failing moderator fails the job (fail closed).
pub fn moderation_fail_open() -> bool {
    false
}

/// `[moderation.http] timeout_secs`.
pub fn moderation_http_timeout_secs() -> f64 {
    10.0
}

/// `[moderation.http] image_side`: the longest side of the image sent.
pub fn moderation_http_image_side() -> u32 {
    512
}

/// `[auth] files`: `/files` stays public (media ids are unguessable), as behind a CDN.
pub fn auth_files() -> String {
    "public".to_owned()
}

/// `[auth] signed_url_ttl_secs`: a signed `/files` URL lives an hour.
pub fn auth_signed_url_ttl_secs() -> u64 {
    3600
}

/// `[auth] token_ttl_secs`: an upload token lives ten minutes, room for a slow form.
pub fn auth_token_ttl_secs() -> u64 {
    600
}

/// Attempts at a webhook delivery before it is given up (about 17 hours with the backoff).
pub fn webhooks_max_attempts() -> u32 {
    12
}

/// How long a receiver may take to answer.
pub fn webhooks_timeout_secs() -> u64 {
    10
}

/// The wait before the first retry; it doubles with each attempt.
pub fn webhooks_first_retry_secs() -> u64 {
    30
}

/// The longest wait between two attempts.
pub fn webhooks_max_retry_secs() -> u64 {
    3 * 3600
}
