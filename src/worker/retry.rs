//! Retry policy as a pure function: how long a transiently failed job waits before its next try.

use std::time::Duration;

/// The delay before attempt `attempts + 1`: `base` doubled per attempt made, at most `max`.
pub fn backoff(attempts: u32, base: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    base.saturating_mul(1 << doublings).min(max)
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
}
