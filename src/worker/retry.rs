//! Retry policy, as pure functions: what a failed attempt leads to, and how long a job, or a
//! claim loop whose database fails, waits before its next try.

use std::time::Duration;

use super::Failure;
use crate::config::WorkerConfig;
use crate::queue::{Job, Millis};

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// FAILED; the staged upload stays when the reason may pass, for an operator's requeue.
    Fail {
        /// Whether the upload stays.
        upload_kept: bool,
    },
    /// PENDING again at `run_at`; the attempt counts.
    Retry {
        /// When it is due.
        run_at: Millis,
    },
    /// PENDING again at `run_at`; the attempt is given back (an outage).
    Defer {
        /// When it is due.
        run_at: Millis,
    },
}

/// The contract's rules (`../shared/spec/API.md` §4): a failure that cannot change ends the
/// job at once; one of the image work that may pass is retried with doubling delays until
/// `max_attempts`; an outage of storage or the database uses no attempt and is waited out, each
/// wait as long as the outage has lasted so far (so doubling, within the retry delays), until
/// the transient window has passed since it began.
pub fn next(settings: &WorkerConfig, job: &Job, failure: &Failure, now: Millis) -> Next {
    let after = |delay: Duration| now.saturating_add(delay.as_millis() as Millis);
    match failure {
        Failure::Permanent(_) | Failure::Rejected(_) => Next::Fail { upload_kept: false },
        Failure::Transient(_) if job.attempts >= job.max_attempts => {
            Next::Fail { upload_kept: true }
        }
        Failure::Transient(_) => Next::Retry {
            run_at: after(backoff(
                job.attempts,
                settings.retry_base_delay,
                settings.retry_max_delay,
            )),
        },
        Failure::Outage(_) => {
            let lasted = now.saturating_sub(job.outage_since.unwrap_or(now)).max(0);
            let lasted = Duration::from_millis(lasted as u64);
            if lasted >= settings.transient_window {
                Next::Fail { upload_kept: true }
            } else {
                let wait = lasted
                    .max(settings.retry_base_delay)
                    .min(settings.retry_max_delay);
                Next::Defer {
                    run_at: after(jittered(wait)),
                }
            }
        }
    }
}

/// The delay before attempt `attempts + 1`: `base` doubled per attempt made, at most `max`.
pub fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    base.saturating_mul(1 << doublings).min(max)
}

/// `delay` scaled to a pseudo-random 50–100 %, so loops that failed together (every claim
/// loop of every worker when the database went away) do not retry together.
pub fn jittered(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    // The clock's low digits vary between calls and processes; good enough to spread retries.
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    delay.mul_f64(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::queue::{JobErrorCode, JobStatus};
    use crate::worker::Fault;

    fn settings() -> WorkerConfig {
        let config = Config::load(None, std::iter::empty(), toml::Table::new()).unwrap();
        config.worker
    }

    fn job(attempts: u32, outage_since: Option<Millis>) -> Job {
        Job {
            attempts,
            outage_since,
            ..Job::example(JobStatus::Processing)
        }
    }

    fn fault(code: JobErrorCode) -> Fault {
        Fault::new(code, "detail")
    }

    const DAY: Millis = 86_400_000;

    #[test]
    fn outages_are_waited_out_for_the_window_without_using_attempts() {
        let s = settings();
        let outage = Failure::Outage(fault(JobErrorCode::StorageUnavailable));
        // The job's third attempt: as a transient failure it would end the job.
        let first = next(&s, &job(3, None), &outage, 1_000);
        let Next::Defer { run_at } = first else {
            panic!("{first:?}")
        };
        assert!(
            (2_000..=3_000).contains(&run_at),
            "base delay, jittered: {run_at}"
        );
        // Ten minutes into the outage: wait up to as long again, capped by the retry maximum.
        let later = next(&s, &job(3, Some(0)), &outage, 600_000);
        let Next::Defer { run_at } = later else {
            panic!("{later:?}")
        };
        assert!(
            (750_000..=900_000).contains(&run_at),
            "capped at 300 s: {run_at}"
        );
        assert_eq!(
            next(&s, &job(1, Some(0)), &outage, DAY),
            Next::Fail { upload_kept: true },
            "past the window: FAILED, the upload kept"
        );
    }

    #[test]
    fn failures_of_the_image_work_use_attempts_and_permanent_ones_end_at_once() {
        let s = settings();
        let crash = Failure::Transient(fault(JobErrorCode::ModerationUnavailable));
        assert_eq!(
            next(&s, &job(1, Some(0)), &crash, 10_000),
            Next::Retry { run_at: 12_000 }
        );
        assert_eq!(
            next(&s, &job(3, None), &crash, 10_000),
            Next::Fail { upload_kept: true },
            "attempts used up by a failure that may pass: the upload stays"
        );
        let corrupt = Failure::Permanent(fault(JobErrorCode::UnreadableImage));
        assert_eq!(
            next(&s, &job(1, None), &corrupt, 10_000),
            Next::Fail { upload_kept: false }
        );
    }

    #[test]
    fn delays_grow_and_are_capped() {
        let s = Duration::from_secs;
        let got: Vec<_> = (1..=6).map(|a| backoff(a, s(2), s(20))).collect();
        assert_eq!(got, [s(2), s(4), s(8), s(16), s(20), s(20)]);
        assert_eq!(backoff(u32::MAX, s(2), s(300)), s(300));
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(5) && d <= Duration::from_secs(10),
                "{d:?}"
            );
        }
    }
}
