//! The command line: `serve`, `worker` and `process` (spec section 5), `migrate`, `api-key`
//! and `token`, one `run_*` each; the operator's commands are in [`admin`].

mod admin;
mod process;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use toml::Table;
use ximagepipeline::config::Scope;
use ximagepipeline::{Config, ImagePipeline, TokenRequest, http};

/// Image-upload pipeline: HTTP API, background workers, and a local batch mode.
#[derive(Debug, Parser)]
#[command(name = "ximagepipeline", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API and (unless --no-worker) the workers in this process.
    Serve(ServeArgs),
    /// Run workers only.
    Worker(CommonArgs),
    /// Run the pipeline on local files: no server, no database.
    Process(ProcessArgs),
    /// Apply the database migrations of this version, then exit.
    Migrate(CommonArgs),
    /// Make a new API key: prints the key (shown once) and the [[auth.keys]] entry with its
    /// SHA-256 for the configuration.
    ApiKey(ApiKeyArgs),
    /// Mint an upload token for a browser: prints the token and what it allows, as JSON.
    Token(TokenArgs),
    /// List, show or retry jobs.
    Jobs(admin::JobsArgs),
    /// Delete every media of a source.
    Media(admin::MediaArgs),
    /// List webhook deliveries, or send one again.
    Webhooks(admin::WebhooksArgs),
    /// Print the effective configuration: each value (secrets masked) and where it came from.
    Config(CommonArgs),
    /// Check the database, storage, the formats built in and the model file.
    Check(CommonArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The source type it uploads into.
    #[arg(long)]
    source_type: String,
    /// The source id it uploads into.
    #[arg(long)]
    source_id: String,
    /// Seconds it lives ([auth] token_ttl_secs by default).
    #[arg(long)]
    ttl_secs: Option<u64>,
    /// A size limit in bytes, below max_file_size.
    #[arg(long)]
    max_bytes: Option<u64>,
    /// It uploads once only.
    #[arg(long)]
    single_use: bool,
    /// TOML configuration file (with [auth] token_secret).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ApiKeyArgs {
    /// Who will hold the key, for the logs.
    #[arg(long, default_value = "backend")]
    name: String,
    /// What it may do: upload, read, delete, admin (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "upload,read,delete")]
    scopes: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// Folder of the embedded database and local objects.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Do not run workers in this process.
    #[arg(long)]
    no_worker: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ProcessArgs {
    /// Source type whose variants to make.
    #[arg(long)]
    source_type: String,
    /// Output folder; each file's results go to OUT/<file name>/.
    #[arg(long)]
    out: PathBuf,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Files processed at once (each also runs its variants in parallel).
    #[arg(long, default_value_t = ximagepipeline::config::defaults::PROCESS_JOBS)]
    jobs: usize,
    /// A progress bar and a summary on standard error: `auto` (when it is a terminal),
    /// `always` or `never`. The JSON lines on standard output are the same either way.
    #[arg(long, value_enum, default_value_t = process::ShowProgress::Auto)]
    progress: process::ShowProgress,
    /// Images to process.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Runs the chosen command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(run_serve(args)),
        Command::Worker(args) => runtime.block_on(run_worker(args)),
        Command::Process(args) => process::run(args),
        Command::Migrate(args) => runtime.block_on(run_migrate(args)),
        Command::ApiKey(args) => run_api_key(args),
        Command::Token(args) => run_token(args),
        Command::Jobs(args) => runtime.block_on(admin::run_jobs(args)),
        Command::Media(args) => runtime.block_on(admin::run_media(args)),
        Command::Webhooks(args) => runtime.block_on(admin::run_webhooks(args)),
        Command::Config(args) => admin::run_config(&args),
        Command::Check(args) => runtime.block_on(admin::run_check(&args)),
    };
    // Whatever still runs past the shutdown bounds (a connection past the grace, the pixel work
    // of a job cut off at the shutdown timeout) is abandoned, not waited for: its job is taken
    // back as a stale claim and run again.
    runtime.shutdown_background();
    telemetry::flush();
    result
}

/// The configuration file and the flags' table of a command.
fn sources(common: &CommonArgs, listen: Option<&str>) -> (Option<PathBuf>, Table) {
    let mut flags = Table::new();
    if let Some(dir) = &common.data_dir {
        flags.insert("data_dir".into(), dir.display().to_string().into());
    }
    if let Some(listen) = listen {
        flags.insert("listen".into(), listen.into());
    }
    (common.config.clone(), flags)
}

/// Loads the configuration of a command and starts logging as it says.
fn load_config(common: &CommonArgs, listen: Option<&str>) -> anyhow::Result<Config> {
    let (file, flags) = sources(common, listen);
    let config = Config::load(file.as_deref(), std::env::vars(), flags)?;
    telemetry::init(&config)?;
    Ok(config)
}

/// Cancels the token on Ctrl-C or SIGTERM. The handlers are installed before this returns, so
/// a signal that arrives during start-up still shuts down cleanly.
fn shutdown_on_signal() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let cancel = token.clone();
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: finishing the jobs in hand");
        cancel.cancel();
    });
    Ok(token)
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = load_config(&args.common, args.listen.as_deref())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    config.listen = listener.local_addr()?;
    let missing = ximagepipeline::config::MISSING_FORMATS;
    if !missing.is_empty() {
        tracing::warn!(
            "this build cannot read {}: uploads of them are refused; build with --features heif (needs libheif-dev) or run scripts/serve",
            missing.join(", ")
        );
    }
    let pipeline = ImagePipeline::open(config).await?;
    let shutdown = shutdown_on_signal()?;
    let workers = (!args.no_worker).then(|| pipeline.start_workers(shutdown.clone()));
    let addr = pipeline.config().listen;
    tracing::info!(%addr, "listening");
    println!("ximagepipeline listening on http://{addr}");
    // On a signal, requests in flight (`server.shutdown_grace_secs`) and jobs in hand
    // (`worker.shutdown_timeout_secs`) get their time side by side: the process exits within
    // the longer of the two.
    let serving = async {
        let stop = shutdown.clone();
        let served = pipeline.serve(listener, stop.cancelled_owned()).await;
        shutdown.cancel();
        served
    };
    let joining = async {
        if let Some(workers) = workers {
            workers.join().await;
        }
    };
    let (served, ()) = tokio::join!(serving, joining);
    served?;
    Ok(ExitCode::SUCCESS)
}

async fn run_worker(args: CommonArgs) -> anyhow::Result<ExitCode> {
    let pipeline = ImagePipeline::open(load_config(&args, None)?).await?;
    let shutdown = shutdown_on_signal()?;
    pipeline.start_workers(shutdown).join().await;
    Ok(ExitCode::SUCCESS)
}

async fn run_migrate(args: CommonArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args, None)?;
    ximagepipeline::migrate(&config).await?;
    println!("database is up to date");
    Ok(ExitCode::SUCCESS)
}

fn run_token(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let common = CommonArgs {
        data_dir: None,
        config: args.config,
    };
    let config = load_config(&common, None)?;
    let request = TokenRequest {
        source_type: args.source_type,
        source_id: args.source_id,
        ttl_secs: args.ttl_secs,
        max_bytes: args.max_bytes,
        single_use: args.single_use,
    };
    let minted = ximagepipeline::mint_upload_token(&config, &request)?;
    let token = http::tokens::UploadToken::from(&minted);
    println!("{}", serde_json::to_string(&token)?);
    Ok(ExitCode::SUCCESS)
}

fn run_api_key(args: ApiKeyArgs) -> anyhow::Result<ExitCode> {
    if let Some(wrong) = args.scopes.iter().find(|s| Scope::parse(s).is_none()) {
        anyhow::bail!("unknown scope {wrong:?}: upload, read, delete or admin");
    }
    let (key, sha256) =
        http::auth::new_api_key().map_err(|e| anyhow::anyhow!("no random bytes: {e}"))?;
    let scopes: Vec<String> = args.scopes.iter().map(|s| format!("{s:?}")).collect();
    println!("# The key, for the app's backend (Authorization: Bearer <key>); shown only now:");
    println!("{key}");
    println!("# Its entry for the configuration file, under [auth]:");
    println!("[[auth.keys]]");
    println!("name = {:?}", args.name);
    println!("sha256 = \"{sha256}\"");
    println!("scopes = [{}]", scopes.join(", "));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
