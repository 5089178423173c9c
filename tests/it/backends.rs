//! The real servers of the scale-out set-up, for the tests that need them.
//!
//! - PostgreSQL: `XIMAGEPIPELINE_TEST_POSTGRES_URL`, else the machine's server on 127.0.0.1:5432 (user
//!   postgres, database `test`); `scripts/test` starts a private cluster when none answers. Each
//!   test gets its own schema, dropped when its guard goes (also when the test fails).
//! - S3: one `s3s-fs` server per test binary (it checks SigV4 signatures), started on a free
//!   loopback port over a temporary folder; `scripts/test` installs it. Each test gets its own
//!   bucket, removed with its guard.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The PostgreSQL server the tests use.
pub fn postgres_url() -> String {
    std::env::var("XIMAGEPIPELINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own in the test database, dropped on drop.
pub struct PgSchema {
    name: String,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        let name = format!("xip_t_{}", cuid2::create_id());
        let mut conn = PgConnection::connect(&postgres_url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {} is not reachable ({e}); run scripts/test, which starts one",
                    postgres_url()
                )
            });
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        PgSchema { name }
    }

    /// A database URL whose connections work in this schema.
    pub fn url(&self) -> String {
        let base = postgres_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-csearch_path%3D{}", self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA {} CASCADE", self.name);
        // Never wait forever on a lock a leaked connection holds: leak the schema instead.
        let timeout = "SET lock_timeout = '10s'";
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect(&postgres_url()).await?;
                sqlx::query(timeout).execute(&mut conn).await?;
                sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("could not drop schema {}: {dropped:?}", self.name);
        }
    }
}

/// Credentials the test S3 server checks.
pub const S3_ACCESS_KEY: &str = "xip-test-access";
pub const S3_SECRET_KEY: &str = "xip-test-secret-0123456789";

/// The running `s3s-fs`.
pub struct S3Server {
    pub endpoint: String,
    root: PathBuf,
}

/// The S3 server of this test binary, started on first use.
pub fn s3_server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(start_s3s_fs)
}

/// `XIMAGEPIPELINE_TEST_S3S_FS`, else where `cargo install` puts it, else `s3s-fs` on the PATH.
fn s3s_fs_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("XIMAGEPIPELINE_TEST_S3S_FS") {
        return PathBuf::from(path);
    }
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|cargo_home| cargo_home.join("bin/s3s-fs"))
        .filter(|installed| installed.exists())
        .unwrap_or_else(|| PathBuf::from("s3s-fs"))
}

/// What s3s-fs logs (at `info`) once its listener is bound, followed by its URL.
const S3S_FS_READY: &str = "server is running at";

/// How long s3s-fs may take to start before the tests fail.
const S3S_FS_START_DEADLINE: Duration = Duration::from_secs(30);

fn start_s3s_fs() -> S3Server {
    let root = std::env::temp_dir().join(format!("xip-s3s-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let binary = s3s_fs_binary();
    let (tx, rx) = std::sync::mpsc::channel();
    let server_root = root.clone();
    // The server dies with the thread that started it (PR_SET_PDEATHSIG), so that thread lives
    // as long as the test binary and no server outlives a run. It reads the server's log: the
    // ready line names the port the server chose (so no other process can take it first) and
    // is the signal to go on; the rest is drained so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut command = Command::new(&binary);
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&server_root)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                tx.send(Err(format!("cannot start {}: {err}", binary.display())))
                    .unwrap();
                return;
            }
        };
        let mut log = BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = log.by_ref().map_while(Result::ok).find_map(|line| {
            let (_, url) = line.split_once(S3S_FS_READY)?;
            Some(url.trim().to_owned())
        });
        let started =
            endpoint.ok_or_else(|| format!("s3s-fs exited before it listened: {:?}", child.wait()));
        tx.send(started).unwrap();
        log.for_each(drop);
        // Only the server's exit ends the log; this thread must stay (see above).
        loop {
            std::thread::park();
        }
    });
    let endpoint = match rx.recv_timeout(S3S_FS_START_DEADLINE) {
        Ok(Ok(endpoint)) => endpoint,
        Ok(Err(why)) => panic!(
            "{why}; scripts/test installs s3s-fs: \
             cargo install s3s-fs@0.14.1 --locked --features binary"
        ),
        Err(err) => panic!("s3s-fs did not listen within {S3S_FS_START_DEADLINE:?}: {err}"),
    };
    S3Server { endpoint, root }
}

/// A bucket of its own on the test S3 server, removed on drop.
pub struct S3Bucket {
    pub name: String,
    dir: PathBuf,
}

impl S3Bucket {
    pub fn create() -> S3Bucket {
        let server = s3_server();
        let name = format!("xip-{}", cuid2::create_id());
        // s3s-fs keeps a bucket as a folder of its root: creating one is making the folder.
        let dir = server.root.join(&name);
        std::fs::create_dir(&dir).unwrap();
        S3Bucket { name, dir }
    }

    /// Top-level configuration lines (no table header, so they go before any) that point the
    /// service at this bucket.
    pub fn config(&self) -> String {
        format!(
            "storage_url = \"s3://{}\"\n\
             s3.endpoint = \"{}\"\n\
             s3.region = \"us-east-1\"\n\
             s3.access_key_id = \"{S3_ACCESS_KEY}\"\n\
             s3.secret_access_key = \"{S3_SECRET_KEY}\"\n\
             s3.path_style = true\n",
            self.name,
            s3_server().endpoint
        )
    }
}

impl Drop for S3Bucket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An S3 server of one test's own, which the test stops and starts again on the same port (an
/// outage); killed on drop.
pub struct PrivateS3 {
    root: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateS3 {
    /// Starts s3s-fs on a free loopback port with one bucket, `bucket`.
    pub fn start() -> PrivateS3 {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("bucket")).unwrap();
        let (child, endpoint) = spawn_s3s_fs(root.path(), 0);
        let port = endpoint.rsplit(':').next().unwrap().parse().unwrap();
        PrivateS3 {
            root,
            port,
            child: Some(child),
        }
    }

    /// Top-level configuration lines pointing the service at the bucket.
    pub fn config(&self) -> String {
        format!(
            "storage_url = \"s3://bucket\"\n\
             s3.endpoint = \"http://127.0.0.1:{}\"\n\
             s3.region = \"us-east-1\"\n\
             s3.access_key_id = \"{S3_ACCESS_KEY}\"\n\
             s3.secret_access_key = \"{S3_SECRET_KEY}\"\n\
             s3.path_style = true\n",
            self.port
        )
    }

    /// The bucket's folder: s3s-fs keeps each object as a file under it.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.path().join("bucket")
    }

    /// Kills the server: every request is refused until [`PrivateS3::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the server again on the same port, over the same objects.
    pub fn restart(&mut self) {
        self.stop();
        let (child, _) = spawn_s3s_fs(self.root.path(), self.port);
        self.child = Some(child);
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts s3s-fs over `root` on `port` (0: any) and returns it with its URL once it listens.
fn spawn_s3s_fs(root: &std::path::Path, port: u16) -> (std::process::Child, String) {
    let mut child = Command::new(s3s_fs_binary())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
        .arg(root)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start s3s-fs; scripts/test installs it");
    let mut log = BufReader::new(child.stdout.take().unwrap()).lines();
    let endpoint = log
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| Some(line.split_once(S3S_FS_READY)?.1.trim().to_owned()))
        .unwrap_or_else(|| panic!("s3s-fs exited before it listened: {:?}", child.wait()));
    // Drain the log so the server never blocks on a full pipe.
    std::thread::spawn(move || log.for_each(drop));
    (child, endpoint)
}

/// A PostgreSQL cluster of one test's own (initdb, pg_ctl on a free loopback port), which the
/// test may restart; the machine's own server is never touched. Stopped and removed on drop.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts the cluster with a database `test`.
    pub fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries (Debian: postgresql) are needed")
            .map(|e| e.unwrap().path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("no initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PrivatePostgres { dir, bin, port };
        if as_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            let status = Command::new("chown")
                .arg("postgres")
                .arg(cluster.dir.path())
                .status()
                .unwrap();
            assert!(
                status.success(),
                "cannot give the cluster folder to postgres"
            );
        }
        cluster.run("initdb", &["-A", "trust", "-U", "postgres", "-D", "data"]);
        cluster.pg_ctl("start");
        cluster.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "test",
            ],
        );
        cluster
    }

    /// The URL of its `test` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/test", self.port)
    }

    /// Stops the server (a fast shutdown: sessions are cut, as in a failover).
    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Starts it again on the same port.
    pub fn start_again(&self) {
        self.pg_ctl("start");
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", "data", "-l", &log, "-w", "-m", "fast", "-o", &options, action,
            ],
        );
    }

    /// Runs one of the server's programs in the cluster's folder and checks it succeeded.
    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// One of the server's programs, run in the cluster's folder (as postgres when root).
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", "data", "-m", "immediate", "stop"])
            .output();
    }
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
