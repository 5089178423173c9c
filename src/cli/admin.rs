//! The operator's commands: `jobs list|show|retry`, `media delete`, `webhooks list|resend`,
//! `config`, `check`. Each works on whichever database and storage the configuration names,
//! SQLite or PostgreSQL.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::{Args, Subcommand};
use serde_json::json;
use ximagepipeline::queue::{Job, JobStatus, now_ms};
use ximagepipeline::{Config, ImagePipeline, JobId};

use super::{CommonArgs, load_config};

/// `jobs …`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// The newest jobs, one line each.
    List {
        /// Only jobs in this state (PENDING, PROCESSING, COMPLETE, REJECTED, FAILED).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One job, every field, as JSON.
    Show {
        /// The job id.
        id: String,
    },
    /// Puts a FAILED job whose upload was kept back to PENDING, its attempts reset.
    Retry {
        /// The job id.
        id: String,
    },
}

/// `webhooks …`.
#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(subcommand)]
    command: WebhooksCommand,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// The newest webhook deliveries, one line each: id, state, attempts, job, event, URL,
    /// last error.
    List {
        /// Only the deliveries of this job.
        #[arg(long)]
        job: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Sends a delivery again: due now, its attempts reset.
    Resend {
        /// The delivery id (`dlv_…`).
        id: String,
    },
}

/// `media …`.
#[derive(Debug, Args)]
pub struct MediaArgs {
    #[command(subcommand)]
    command: MediaCommand,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Subcommand)]
enum MediaCommand {
    /// Deletes every media of one source: its objects, then its rows.
    Delete {
        /// The source type.
        #[arg(long)]
        source_type: String,
        /// The source id.
        #[arg(long)]
        source_id: String,
    },
}

pub async fn run_jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let pipeline = ImagePipeline::open(load_config(&args.common, None)?).await?;
    let jobs = pipeline.admin();
    match args.command {
        JobsCommand::List { status, limit } => {
            let status = status
                .map(|s| {
                    JobStatus::parse(&s.to_ascii_uppercase())
                        .with_context(|| format!("unknown status {s:?}"))
                })
                .transpose()?;
            for job in jobs
                .jobs()
                .list_jobs(status, limit.clamp(1, 10_000))
                .await?
            {
                println!("{}", line(&job));
            }
        }
        JobsCommand::Show { id } => {
            let job = jobs
                .jobs()
                .get(&JobId::from_string(&id))
                .await?
                .with_context(|| format!("no job {id}"))?;
            println!("{}", serde_json::to_string_pretty(&job_json(&job))?);
        }
        JobsCommand::Retry { id } => match pipeline.requeue(&JobId::from_string(&id)).await {
            Ok(job) => println!("{} is PENDING again", job.id),
            Err(refused) => {
                eprintln!("cannot retry {id}: {refused}");
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_media(args: MediaArgs) -> anyhow::Result<ExitCode> {
    let pipeline = ImagePipeline::open(load_config(&args.common, None)?).await?;
    let MediaCommand::Delete {
        source_type,
        source_id,
    } = args.command;
    let mut deleted = 0;
    // Deleting walks the first page again and again: each pass removes what it listed.
    loop {
        let page = pipeline
            .media_page(&source_type, &source_id, None, 500)
            .await?;
        if page.media.is_empty() {
            break;
        }
        for media in page.media {
            if pipeline.delete_media(&media.id).await? {
                deleted += 1;
            }
        }
    }
    println!("deleted {deleted} media of {source_type}/{source_id}");
    Ok(ExitCode::SUCCESS)
}

/// `config`: every key, its value (secrets masked) and where it came from.
pub fn run_config(common: &CommonArgs) -> anyhow::Result<ExitCode> {
    let (file, flags) = super::sources(common, None);
    let explained = Config::explain(file.as_deref(), std::env::vars(), flags)?;
    let width = explained.iter().map(|(k, v, _)| k.len() + v.len()).max();
    for (key, value, origin) in explained {
        let pad = width.unwrap_or(0) - key.len() - value.len();
        println!("{key} = {value}{:pad$}   # {origin}", "");
    }
    Ok(ExitCode::SUCCESS)
}

/// `check`: the database, storage, the formats built in and the model file, each `ok` or what
/// is wrong; exits 1 if anything is.
pub async fn run_check(common: &CommonArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common, None)?;
    let mut fine = true;
    let mut report = |part: &str, result: Result<String, String>| {
        match &result {
            Ok(said) => println!("ok    {part}: {said}"),
            Err(said) => println!("FAIL  {part}: {said}"),
        }
        fine &= result.is_ok();
    };
    let mut database = config.database.clone();
    database.migrate_on_start = false;
    let store = ximagepipeline::queue::connect(&database).await;
    let now = Utc::now().timestamp_millis();
    let checked = match &store {
        Ok(store) => store.check_ready(now).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    report(
        "database",
        checked.map(|()| format!("{} takes writes, migrations current", kind(&config))),
    );
    let storage = ximagepipeline::storage::Storage::open(&config);
    let checked = match &storage {
        Ok(storage) => storage.check().await.map_err(|e| format!("{e:#}")),
        Err(e) => Err(e.to_string()),
    };
    report(
        "storage",
        checked.map(|()| storage.map(|s| s.location()).unwrap_or_default()),
    );
    let missing = ximagepipeline::config::MISSING_FORMATS;
    report(
        "formats",
        if missing.is_empty() {
            Ok(ximagepipeline::config::SUPPORTED_MIME_TYPES.join(", "))
        } else {
            Err(format!(
                "this build lacks {} (build with --features heif, which needs libheif-dev)",
                missing.join(", ")
            ))
        },
    );
    let model = match config.moderation.as_ref().map(|m| &m.provider) {
        Some(ximagepipeline::config::ModerationProvider::Local { model }) => {
            if model.is_file() {
                Ok(model.display().to_string())
            } else {
                Err(format!(
                    "{} is missing: run scripts/fetch-model",
                    model.display()
                ))
            }
        }
        _ => Ok("not used".to_owned()),
    };
    report("model", model);
    Ok(if fine {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn kind(config: &Config) -> &'static str {
    match config.database.kind {
        ximagepipeline::config::DatabaseKind::Sqlite => "SQLite",
        ximagepipeline::config::DatabaseKind::Postgres => "PostgreSQL",
    }
}

/// Milliseconds since the epoch as RFC 3339.
fn time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}

/// One job on one line: id, state, source, attempts, code, created.
fn line(job: &Job) -> String {
    format!(
        "{}  {:<10}  {}/{}  attempts {}/{}  {}  {}",
        job.id,
        job.status.as_str(),
        job.source_type,
        job.source_id,
        job.attempts,
        job.max_attempts,
        job.error_code.map_or("-", |c| c.as_str()),
        time(job.created_at),
    )
}

fn job_json(job: &Job) -> serde_json::Value {
    json!({
        "id": job.id,
        "status": job.status.as_str(),
        "sourceType": job.source_type,
        "sourceId": job.source_id,
        "stagingKey": job.staging_key,
        "originalFilename": job.original_filename,
        "mimeType": job.mime_type,
        "fileSize": job.file_size,
        "mediaId": job.media_id,
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "error": job.error,
        "code": job.error_code.map(|c| c.as_str()),
        "uploadKept": job.upload_kept,
        "client": job.client,
        "requestId": job.request_id,
        "moderationResult": job.moderation_result,
        "moderationDetails": job.moderation_details,
        "lockedBy": job.locked_by,
        "runAt": time(job.run_at),
        "createdAt": time(job.created_at),
        "updatedAt": time(job.updated_at),
        "outageSince": job.outage_since.map(time),
    })
}

pub async fn run_webhooks(args: WebhooksArgs) -> anyhow::Result<ExitCode> {
    let pipeline = ImagePipeline::open(load_config(&args.common, None)?).await?;
    let admin = pipeline.admin();
    match args.command {
        WebhooksCommand::List { job, limit } => {
            let job = job.map(JobId::from_string);
            let deliveries = admin
                .jobs()
                .list_deliveries(job.as_ref(), limit.clamp(1, 10_000))
                .await?;
            for d in deliveries {
                let url = if d.url.is_empty() {
                    "[webhooks] url"
                } else {
                    &d.url
                };
                println!(
                    "{}  {:<9}  attempts {:>2}  {}  {:<13}  {}  {}",
                    d.id,
                    d.status.as_str(),
                    d.attempts,
                    d.job_id,
                    d.event,
                    url,
                    d.last_error.as_deref().unwrap_or("")
                );
            }
        }
        WebhooksCommand::Resend { id } => {
            if !admin.jobs().resend_delivery(&id, now_ms()).await? {
                eprintln!("no delivery {id}");
                return Ok(ExitCode::FAILURE);
            }
            println!("{id} is due again");
        }
    }
    Ok(ExitCode::SUCCESS)
}
