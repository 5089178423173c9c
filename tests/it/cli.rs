//! The command line through the built binary: `process` on local files, and start-up refusals.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::common::{corpus, webp_size};

/// No command here may run longer than this (a refused start-up must not hang).
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs the binary to its end, killing it if it outlives [`DEADLINE`].
async fn run(args: &[impl AsRef<std::ffi::OsStr> + std::fmt::Debug]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_ximagepipeline"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`ximagepipeline {args:?}` did not end within {DEADLINE:?}"))
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Files directly inside `dir`, by name.
fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Checks one successful `process` line and the files it names under `out/<file name>/`.
#[track_caller]
fn check_processed(line: &Value, file: &Path, out: &Path) {
    assert!(
        line.get("error").is_none(),
        "{} failed: {line}",
        file.display()
    );
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let (w, h) = (
        line["width"].as_u64().unwrap(),
        line["height"].as_u64().unwrap(),
    );
    assert!(w > 0 && h > 0, "{line}");
    let g = gcd(w, h);
    assert_eq!(
        line["aspectRatio"],
        format!("{}:{}", w / g, h / g),
        "{line}"
    );
    let blurhash = line["blurhash"]
        .as_str()
        .unwrap_or_else(|| panic!("no blurhash: {line}"));
    assert!(blurhash.len() >= 6, "{line}");

    let dir = out.join(&name);
    let variants = line["variants"]
        .as_object()
        .unwrap_or_else(|| panic!("no variants: {line}"));
    let names: BTreeSet<&str> = variants.keys().map(String::as_str).collect();
    assert!(names.contains("md"), "gallery always makes md: {line}");
    assert!(
        names.is_subset(&BTreeSet::from(["md", "lg", "xl"])),
        "gallery is md, lg, xl: {line}"
    );
    let mut expected = BTreeSet::new();
    for (variant, info) in variants {
        let file_name = format!("{variant}.webp");
        let bytes = std::fs::read(dir.join(&file_name))
            .unwrap_or_else(|e| panic!("{}/{file_name}: {e}", dir.display()));
        let size = webp_size(&bytes);
        assert_eq!(
            (u64::from(size.0), u64::from(size.1)),
            (
                info["width"].as_u64().unwrap(),
                info["height"].as_u64().unwrap()
            ),
            "{name} {variant}: {info}"
        );
        assert!(
            u64::from(size.0) <= w && u64::from(size.1) <= h,
            "{name} {variant} enlarged"
        );
        expected.insert(file_name);
    }
    let original_path = std::path::PathBuf::from(
        line["original"]
            .as_str()
            .unwrap_or_else(|| panic!("no original: {line}")),
    );
    assert_eq!(original_path.parent(), Some(dir.as_path()));
    let original = original_path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(original.starts_with("original."), "{original}");
    let original_bytes = std::fs::read(dir.join(&original))
        .unwrap_or_else(|e| panic!("{}/{original}: {e}", dir.display()));
    assert!(!original_bytes.is_empty());
    expected.insert(original);
    assert_eq!(file_names(&dir), expected, "files written for {name}");
}

#[tokio::test]
async fn process_writes_each_file_and_reports_each_failure() {
    let out = tempfile::tempdir().unwrap();
    let files = [
        corpus("photos/kodim03.png"),
        corpus("invalid/text_renamed.jpg"),
        corpus("valid/jpeg_progressive_cat.jpg"),
    ];
    let mut args = vec!["process", "--source-type", "gallery", "--out"];
    let out_arg = out.path().display().to_string();
    args.push(&out_arg);
    let file_args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(file_args.iter().map(String::as_str));

    let output = run(&args).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "one line per file:\n{stdout}\nstderr:\n{stderr}"
    );

    check_processed(&lines[0], &files[0], out.path());
    check_processed(&lines[2], &files[2], out.path());
    assert_eq!(lines[0]["width"], 768, "{}", lines[0]);
    assert_eq!(lines[0]["height"], 512, "{}", lines[0]);
    assert_eq!(lines[2]["aspectRatio"], "4:3", "{}", lines[2]);

    let bad = &lines[1];
    let error = bad["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {bad}"));
    assert!(!error.is_empty());
    assert!(
        !out.path().join("text_renamed.jpg").exists(),
        "nothing written for a failure"
    );

    assert!(
        !output.status.success(),
        "one file failed, so the exit code is non-zero"
    );
}

#[tokio::test]
async fn process_with_jobs_reports_every_file_once() {
    let out = tempfile::tempdir().unwrap();
    let files = [
        corpus("photos/kodim03.png"),
        corpus("invalid/text_renamed.jpg"),
        corpus("valid/jpeg_progressive_cat.jpg"),
        corpus("photos/kodim04.png"),
    ];
    let out_arg = out.path().display().to_string();
    let file_args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let mut args = vec![
        "process",
        "--jobs",
        "3",
        "--source-type",
        "gallery",
        "--out",
        &out_arg,
    ];
    args.extend(file_args.iter().map(String::as_str));

    let output = run(&args).await;
    let stdout = text(&output.stdout);
    // Lines come in the order files finish: match them by file.
    let mut by_file = std::collections::BTreeMap::new();
    for line in stdout.lines() {
        let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let file = line["file"]
            .as_str()
            .unwrap_or_else(|| panic!("a line without its file: {line}"))
            .to_owned();
        assert!(
            by_file.insert(file, line).is_none(),
            "one line per file:\n{stdout}"
        );
    }
    assert_eq!(by_file.len(), files.len(), "{stdout}");
    for (file, arg) in files.iter().zip(&file_args) {
        let line = &by_file[arg];
        if file.ends_with("text_renamed.jpg") {
            assert!(line["error"].is_string(), "{line}");
        } else {
            check_processed(line, file, out.path());
        }
    }
    assert!(!output.status.success(), "one file failed");
}

#[tokio::test]
async fn process_summarises_on_standard_error_and_keeps_standard_output_for_json() {
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().display().to_string();
    let files = [
        corpus("photos/kodim03.png"),
        corpus("invalid/text_renamed.jpg"),
        corpus("valid/jpeg_progressive_cat.jpg"),
    ];
    let file_args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let with = |progress: &'static str| {
        let mut args = vec!["process", "--progress", progress, "--source-type", "avatar"];
        args.extend(["--out", &out_arg]);
        args.extend(file_args.iter().map(String::as_str));
        args
    };

    let shown = run(&with("always")).await;
    let stderr = text(&shown.stderr);
    assert!(
        stderr.contains("3 files: 2 succeeded, 1 failed (UNREADABLE_IMAGE 1)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("MP/s") && stderr.contains("MB in"),
        "{stderr}"
    );
    let lines: Vec<Value> = text(&shown.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert_eq!(lines.len(), 3, "only the JSON lines on standard output");

    // Not a terminal (a pipe, as here): no summary unless asked.
    let quiet = run(&with("auto")).await;
    assert!(
        !text(&quiet.stderr).contains("succeeded"),
        "{}",
        text(&quiet.stderr)
    );
    assert_eq!(text(&quiet.stdout).lines().count(), 3);
}

#[tokio::test]
async fn process_refuses_an_unknown_source_type() {
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().display().to_string();
    let file = corpus("valid/jpeg_progressive_cat.jpg")
        .display()
        .to_string();
    let output = run(&[
        "process",
        "--source-type",
        "no_such_type",
        "--out",
        &out_arg,
        &file,
    ])
    .await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("no_such_type"),
        "the message names the type: {stderr}"
    );
    assert!(text(&output.stdout).is_empty(), "no result lines");
    assert_eq!(file_names(out.path()), BTreeSet::new(), "nothing written");
}

#[tokio::test]
async fn serve_refuses_an_unknown_config_key() {
    for (config, key) in [
        ("max_file_sise = 10\n", "max_file_sise"),
        ("[worker]\nheartbeat_secs = 1\n", "heartbeat_secs"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, config).unwrap();
        let data = dir.path().join("data").display().to_string();
        let file = file.display().to_string();
        let output = run(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--config",
            &file,
        ])
        .await;
        let stderr = text(&output.stderr);
        assert!(
            !output.status.success(),
            "{config:?} was accepted; stderr: {stderr}"
        );
        assert!(stderr.contains(key), "the message names {key}: {stderr}");
        assert!(
            !text(&output.stdout).contains("listening"),
            "must not start with {config:?}"
        );
    }
}

/// `api-key` prints a fresh key and its `[[auth.keys]]` entry; a server configured with that
/// entry takes the key for what its scopes allow, and two runs never give the same key.
#[tokio::test]
async fn api_key_makes_a_key_the_server_accepts() {
    let made = run(&["api-key", "--name", "app", "--scopes", "read"]).await;
    assert!(made.status.success(), "{}", text(&made.stderr));
    let out = text(&made.stdout);
    let key = out
        .lines()
        .find(|l| l.starts_with("xip_"))
        .unwrap_or_else(|| panic!("no key in {out}"));
    assert_eq!(key.len(), 4 + 64, "{key}");
    let entry = &out[out.find("[[auth.keys]]").unwrap()..];
    let server = crate::common::TestServer::start_with(&format!("[auth]\n{entry}")).await;
    let list = format!(
        "{}/image-pipeline/media?sourceType=avatar&sourceId=u1",
        server.url
    );
    let answer = server
        .client
        .get(&list)
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let answer = server.client.get(&list).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED);

    let again = text(&run(&["api-key"]).await.stdout);
    assert!(!again.contains(key), "a new key each time");
    let wrong = run(&["api-key", "--scopes", "everything"]).await;
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("unknown scope"),
        "{}",
        text(&wrong.stderr)
    );
}

/// `token` mints an upload token from the configuration alone; the server with that
/// configuration takes it for its source, and a request that cannot be granted fails clearly.
#[tokio::test]
async fn token_mints_an_upload_token_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auth.toml");
    let auth = "[auth]\ntoken_secret = \"a-token-secret-of-at-least-32-characters\"\n\
                [[auth.keys]]\nname = \"app\"\nscopes = [\"read\"]\n\
                sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
    std::fs::write(&config, auth).unwrap();
    let config = config.display().to_string();
    let args = [
        "token",
        "--config",
        &config,
        "--source-type",
        "avatar",
        "--source-id",
        "user-1",
        "--single-use",
    ];
    let made = run(&args).await;
    assert!(made.status.success(), "{}", text(&made.stderr));
    let minted: Value = serde_json::from_str(text(&made.stdout).trim()).unwrap();
    assert_eq!(minted["singleUse"], true);
    let token = minted["token"].as_str().unwrap();

    let server = crate::common::TestServer::start_with(auth).await;
    let form = || {
        reqwest::multipart::Form::new()
            .text("token", token.to_owned())
            .text("sourceType", "avatar")
            .text("sourceId", "user-1")
            .part(
                "file",
                reqwest::multipart::Part::bytes(crate::common::png(8, 8)).file_name("a.png"),
            )
    };
    let (status, body) = server.post_form(form()).await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
    let (status, _) = server.post_form(form()).await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "single use");

    let wrong = run(&[&args[..4], &["nope", "--source-id", "u"]].concat()).await;
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("Unknown sourceType"),
        "{}",
        text(&wrong.stderr)
    );
}

/// The operator's commands on a data folder another process uses: `jobs list|show|retry`,
/// `media delete`, `config` (secrets masked, each value's source) and `check`.
#[tokio::test]
async fn operator_commands_list_show_retry_delete_explain_and_check() {
    use ximagepipeline::queue::{Failed, JobErrorCode, JobStatus, now_ms};
    use ximagepipeline::{Config, ImagePipeline};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pipeline = ImagePipeline::open(Config::embedded(&data).unwrap())
        .await
        .unwrap();
    let admin = pipeline.admin();
    let done = pipeline
        .submit(crate::common::png(16, 16), "avatar", "u1")
        .await
        .unwrap();
    admin.run_pending_jobs("test").await;
    let kept = pipeline
        .submit(crate::common::png(8, 8), "avatar", "u2")
        .await
        .unwrap();
    let claimed = admin.jobs().claim("test", now_ms()).await.unwrap().unwrap();
    let failed = Failed {
        code: JobErrorCode::StorageUnavailable,
        error: JobErrorCode::StorageUnavailable.sentence(),
        upload_kept: true,
    };
    assert!(
        admin
            .jobs()
            .fail(&claimed.id, "test", failed, now_ms())
            .await
            .unwrap()
    );
    let data_dir = data.display().to_string();
    let on_data = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--data-dir".to_owned(), data_dir.clone()]);
        all
    };

    let listed = text(&run(&on_data(&["jobs", "list"])).await.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        lines[0].starts_with(kept.as_str()) && lines[0].contains("FAILED"),
        "{listed}"
    );
    assert!(lines[0].contains("STORAGE_UNAVAILABLE"), "{listed}");
    assert!(lines[1].starts_with(done.as_str()) && lines[1].contains("COMPLETE"));
    let failed_only = text(
        &run(&on_data(&["jobs", "list", "--status", "failed"]))
            .await
            .stdout,
    );
    assert_eq!(failed_only.lines().count(), 1, "{failed_only}");

    let shown = run(&on_data(&["jobs", "show", done.as_str()])).await;
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        (&shown["status"], &shown["sourceId"]),
        (&"COMPLETE".into(), &"u1".into())
    );

    let refused = run(&on_data(&["jobs", "retry", done.as_str()])).await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("cannot retry"),
        "{}",
        text(&refused.stderr)
    );
    let retried = run(&on_data(&["jobs", "retry", kept.as_str()])).await;
    assert!(retried.status.success(), "{}", text(&retried.stderr));
    let job = admin.jobs().get(&kept).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Pending, 0));

    let deleted = run(&on_data(&[
        "media",
        "delete",
        "--source-type",
        "avatar",
        "--source-id",
        "u1",
    ]))
    .await;
    assert_eq!(text(&deleted.stdout).trim(), "deleted 1 media of avatar/u1");
    assert!(
        pipeline
            .list_media("avatar", "u1")
            .await
            .unwrap()
            .is_empty()
    );
    let stored = admin.storage().list("media/avatar/u1").await.unwrap();
    assert!(stored.is_empty(), "{stored:?}");

    let config = dir.path().join("secret.toml");
    std::fs::write(
        &config,
        "[auth]\ntoken_secret = \"a-token-secret-of-at-least-32-characters\"\n\
         [[auth.keys]]\nname = \"app\"\nscopes = [\"read\"]\n\
         sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let explained = text(&run(&on_data(&["config", "--config", &config])).await.stdout);
    let line_of = |key: &str| {
        explained
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in {explained}"))
            .to_owned()
    };
    assert!(line_of("auth.token_secret").contains("\"***\""));
    assert!(line_of("auth.token_secret").ends_with(&format!("# {config}")));
    assert!(!explained.contains("a-token-secret"), "{explained}");
    assert!(line_of("data_dir").ends_with("# command line"));
    assert!(line_of("max_file_size").ends_with("# defaults"));

    let checked = run(&on_data(&["check"])).await;
    let said = text(&checked.stdout);
    assert!(checked.status.success(), "{said}");
    for part in ["database", "storage", "formats", "model"] {
        assert!(said.contains(&format!("ok    {part}")), "{said}");
    }
    let broken = run(&[
        "check",
        "--config",
        &config,
        "--data-dir",
        "/proc/no-such-place",
    ])
    .await;
    assert!(!broken.status.success());
    assert!(
        text(&broken.stdout).contains("FAIL  database"),
        "{}",
        text(&broken.stdout)
    );
}
