//! The built-in configuration, as TOML: the spec's section 4 defaults.
//!
//! Keeping the defaults in the same form as a user's file means one merge rule serves
//! defaults, file, environment and flags alike (see `config::load`).

/// Every default the service runs with when nothing else is said.
pub const DEFAULTS: &str = r#"
listen = "127.0.0.1:3000"
data_dir = "./data"
route_prefix = "/image-pipeline"
max_file_size = 52428800
allowed_mime_types = ["image/jpeg", "image/png", "image/webp", "image/gif"]
max_pixels = 100000000
max_side = 20000
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

[worker]
max_attempts = 3
heartbeat_interval_secs = 5
stale_timeout_secs = 60
retry_base_delay_secs = 2
retry_max_delay_secs = 300
idle_poll_secs = 2
staging_grace_secs = 3600
staging_sweep_secs = 60
shutdown_timeout_secs = 60
job_timeout_secs = 120.0

[database]
max_connections = 10
min_connections = 0
acquire_timeout_secs = 30
idle_timeout_secs = 600
migrate_on_start = true

[s3]
"#;
