//! The service's metrics, in a registry it owns (no global recorder, so a host app's own
//! metrics never clash with ours), rendered by `GET /metrics` in the Prometheus text format.
//!
//! The parts that do the work record into one shared [`Metrics`]: the HTTP layer (requests by
//! route and status, latency), the upload route (bytes in), the workers (stage durations, jobs
//! finished by outcome and code, bytes stored, workers busy). The job counts by state come from
//! the database, at most once per [`COUNTS_MAX_AGE`] however often the route is scraped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How old the cached job counts may be: a scrape every second costs one query per this.
pub const COUNTS_MAX_AGE: Duration = Duration::from_secs(5);

/// One step of a job, timed on its own.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Stage {
    /// Sniffing the format and checking the header.
    probe,
    /// Decoding the first frame and turning it upright.
    decode,
    /// The moderation provider's verdict.
    moderation,
    /// Making every variant's pixels.
    resize,
    /// Encoding every variant to WebP.
    encode,
    /// Stripping the original's metadata.
    strip,
    /// Writing the variants and the original to storage.
    store,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: Stage,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 1 ms to about 33 s, doubling.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric of the service. Shared as an `Arc`; recording is lock-free.
pub struct Metrics {
    registry: Registry,
    stages: Histograms<StageLabels>,
    finished: Family<OutcomeLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    latency: Histograms<RouteLabels>,
    bytes_in: Counter,
    bytes_out: Counter,
    busy: Gauge,
    jobs: Family<StateLabels, Gauge>,
    oldest_pending: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// The job counts last read from the database, and when.
    counts: Mutex<Option<(Instant, crate::queue::JobCounts)>>,
    /// Claim loops running in this process.
    loops: AtomicUsize,
    /// Claim loops whose last claim failed (the database cannot be reached or written).
    failing: Gauge,
}

/// Whether this process's workers can make progress, for the readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerHealth {
    /// Claim loops running here (0 in an API-only process).
    pub running: usize,
    /// Of those, how many cannot claim jobs.
    pub failing: usize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered under `ximagepipeline_`.
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::with_prefix("ximagepipeline"),
            stages: Family::new_with_constructor(seconds),
            finished: Family::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(seconds),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            busy: Gauge::default(),
            jobs: Family::default(),
            oldest_pending: Gauge::default(),
            counts: Mutex::new(None),
            loops: AtomicUsize::new(0),
            failing: Gauge::default(),
        };
        metrics.registered()
    }

    /// The same metrics, each registered with its name and help.
    fn registered(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "stage_seconds",
            "Time spent in each step of a job",
            self.stages.clone(),
        );
        r.register(
            "jobs_finished",
            "Jobs ended by this process, by outcome and FAILED code",
            self.finished.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            self.requests.clone(),
        );
        r.register(
            "http_request_seconds",
            "Time to answer an HTTP request, by route",
            self.latency.clone(),
        );
        r.register(
            "upload_bytes",
            "Bytes of uploads accepted (202)",
            self.bytes_in.clone(),
        );
        r.register(
            "stored_bytes",
            "Bytes of variants and originals written to storage",
            self.bytes_out.clone(),
        );
        r.register(
            "workers_busy",
            "Workers of this process running a job",
            self.busy.clone(),
        );
        r.register(
            "workers_failing",
            "Workers of this process that cannot claim jobs (database unreachable)",
            self.failing.clone(),
        );
        r.register(
            "jobs",
            "Jobs in the database by state (cached up to 5 s)",
            self.jobs.clone(),
        );
        r.register(
            "oldest_pending_job_age_seconds",
            "Age of the oldest PENDING job, 0 when none (cached up to 5 s)",
            self.oldest_pending.clone(),
        );
        self
    }

    /// Records how long `stage` took for one job.
    pub fn stage(&self, stage: Stage, took: Duration) {
        self.stages
            .get_or_create(&StageLabels { stage })
            .observe(took.as_secs_f64());
    }

    /// Records a job ended by this process: `COMPLETE`, `REJECTED` or `FAILED` with its code.
    pub fn finished(&self, outcome: &'static str, code: Option<&'static str>) {
        let code = code.unwrap_or("");
        self.finished
            .get_or_create(&OutcomeLabels { outcome, code })
            .inc();
    }

    /// Records one answered request of `route` (the matched path pattern, never the raw path).
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = RequestLabels {
            route: route.to_owned(),
            method: method.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records an accepted upload of `bytes`.
    pub fn uploaded(&self, bytes: u64) {
        self.bytes_in.inc_by(bytes);
    }

    /// Records `bytes` written to storage.
    pub fn stored(&self, bytes: u64) {
        self.bytes_out.inc_by(bytes);
    }

    /// Marks a worker busy until the guard drops.
    pub fn busy(&self) -> BusyGuard<'_> {
        self.busy.inc();
        BusyGuard(&self.busy)
    }

    /// A claim loop started.
    pub fn loop_started(&self) {
        self.loops.fetch_add(1, Ordering::Relaxed);
    }

    /// A claim loop ended.
    pub fn loop_stopped(&self) {
        self.loops.fetch_sub(1, Ordering::Relaxed);
    }

    /// A claim loop's claims began to fail.
    pub fn claims_failing(&self) {
        self.failing.inc();
    }

    /// A claim loop whose claims failed claims again (or ended).
    pub fn claims_recovered(&self) {
        self.failing.dec();
    }

    /// Whether this process's workers can make progress.
    pub fn worker_health(&self) -> WorkerHealth {
        WorkerHealth {
            running: self.loops.load(Ordering::Relaxed),
            failing: usize::try_from(self.failing.get()).unwrap_or(0),
        }
    }

    /// The cached job counts if younger than [`COUNTS_MAX_AGE`].
    pub fn cached_counts(&self) -> Option<crate::queue::JobCounts> {
        let cached = self.counts.lock().expect("never poisoned");
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < COUNTS_MAX_AGE)
            .map(|(_, counts)| counts.clone())
    }

    /// The text of a scrape, with the job counts `counts` (remembered for the next scrapes)
    /// as of `now` (milliseconds since the epoch).
    pub fn render(&self, counts: Option<crate::queue::JobCounts>, now: i64) -> String {
        if let Some(counts) = counts {
            for state in ["PENDING", "PROCESSING", "COMPLETE", "REJECTED", "FAILED"] {
                let n = counts
                    .by_status
                    .iter()
                    .find(|(s, _)| s.as_str() == state)
                    .map_or(0, |(_, n)| *n);
                self.jobs
                    .get_or_create(&StateLabels { state })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let age = counts
                .oldest_pending
                .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
            self.oldest_pending.set(age);
            *self.counts.lock().expect("never poisoned") = Some((Instant::now(), counts));
        }
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// A worker marked busy; marks it idle when dropped.
pub struct BusyGuard<'a>(&'a Gauge);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
