//! The schema migrations of both stores, embedded in the binary.
//!
//! Written out instead of `sqlx::migrate!` so the build needs no sqlx proc-macro, which compiles
//! a second copy of sqlx and SQLite for the host. The checksums are sqlx's own (SHA-384 of the
//! file), so databases migrated by earlier builds validate unchanged.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration file: its version, description and SQL.
type File = (i64, &'static str, &'static str);

const SQLITE: &[File] = &[
    (
        1,
        "jobs media",
        include_str!("../../migrations/sqlite/0001_jobs_media.sql"),
    ),
    (
        2,
        "codes and clients",
        include_str!("../../migrations/sqlite/0002_codes_and_clients.sql"),
    ),
    (
        3,
        "outages",
        include_str!("../../migrations/sqlite/0003_outages.sql"),
    ),
    (
        4,
        "media pages",
        include_str!("../../migrations/sqlite/0004_media_pages.sql"),
    ),
    (
        5,
        "upload tokens",
        include_str!("../../migrations/sqlite/0005_upload_tokens.sql"),
    ),
    (
        6,
        "operations",
        include_str!("../../migrations/sqlite/0006_operations.sql"),
    ),
    (
        7,
        "trace parent",
        include_str!("../../migrations/sqlite/0007_trace_parent.sql"),
    ),
    (
        8,
        "idempotency keys",
        include_str!("../../migrations/sqlite/0008_idempotency_keys.sql"),
    ),
    (
        9,
        "webhooks",
        include_str!("../../migrations/sqlite/0009_webhooks.sql"),
    ),
];

const POSTGRES: &[File] = &[
    (
        1,
        "jobs media",
        include_str!("../../migrations/postgres/0001_jobs_media.sql"),
    ),
    (
        2,
        "codes and clients",
        include_str!("../../migrations/postgres/0002_codes_and_clients.sql"),
    ),
    (
        3,
        "outages",
        include_str!("../../migrations/postgres/0003_outages.sql"),
    ),
    (
        4,
        "media pages",
        include_str!("../../migrations/postgres/0004_media_pages.sql"),
    ),
    (
        5,
        "upload tokens",
        include_str!("../../migrations/postgres/0005_upload_tokens.sql"),
    ),
    (
        6,
        "operations",
        include_str!("../../migrations/postgres/0006_operations.sql"),
    ),
    (
        7,
        "trace parent",
        include_str!("../../migrations/postgres/0007_trace_parent.sql"),
    ),
    (
        8,
        "job changes",
        include_str!("../../migrations/postgres/0008_job_changes.sql"),
    ),
    (
        9,
        "idempotency keys",
        include_str!("../../migrations/postgres/0009_idempotency_keys.sql"),
    ),
    (
        10,
        "webhooks",
        include_str!("../../migrations/postgres/0010_webhooks.sql"),
    ),
];

/// The SQLite store's migrations.
pub(super) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL store's migrations.
pub(super) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

fn migrator(files: &[File]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
