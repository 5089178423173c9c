//! Retry policy: how long a transiently failed job, or a claim loop whose database fails,
//! waits before its next try.

use std::time::Duration;

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
