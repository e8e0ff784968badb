//! Backoff between in-place retries: exponential, capped, with jitter.

use std::time::Duration;

use crate::config::RetryPolicy;

/// The delay before attempt `next_attempt` (2 for the first retry).
/// A plugin's hint replaces the computed delay but stays within the policy's
/// bounds. `unit` is a uniform sample from `[0, 1)`, passed in so that tests
/// are deterministic.
pub fn backoff(policy: &RetryPolicy, next_attempt: u32, hint_ms: Option<u64>, unit: f64) -> Duration {
    let base = match hint_ms {
        Some(ms) => Duration::from_millis(ms),
        None => {
            let exponent = next_attempt.saturating_sub(2).min(64) as i32;
            let scaled = policy.initial_backoff.as_secs_f64() * policy.multiplier.powi(exponent);
            Duration::from_secs_f64(scaled.min(policy.max_backoff.as_secs_f64()))
        }
    };
    // Jitter spreads retries of many partitions apart: ±jitter of the delay.
    let factor = 1.0 + policy.jitter * (2.0 * unit - 1.0);
    let jittered = Duration::from_secs_f64((base.as_secs_f64() * factor).max(0.0));
    jittered.clamp(policy.initial_backoff.min(policy.max_backoff), policy.max_backoff)
}

/// [`backoff`] with a random jitter sample.
pub fn backoff_random(policy: &RetryPolicy, next_attempt: u32, hint_ms: Option<u64>) -> Duration {
    backoff(policy, next_attempt, hint_ms, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            max_faults: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let p = policy(0.0);
        let delays: Vec<u128> = (2..=7).map(|a| backoff(&p, a, None, 0.5).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_the_bounds() {
        let p = policy(0.2);
        assert_eq!(backoff(&p, 3, None, 0.0).as_millis(), 160);
        assert_eq!(backoff(&p, 3, None, 0.999_999).as_millis(), 239);
        assert_eq!(backoff(&p, 2, None, 0.0), Duration::from_millis(100), "never below initial_backoff");
        assert_eq!(backoff(&p, 9, None, 0.999), Duration::from_secs(1), "never above max_backoff");
    }

    #[test]
    fn a_hint_is_used_but_bounded() {
        let p = policy(0.0);
        assert_eq!(backoff(&p, 2, Some(300), 0.5), Duration::from_millis(300));
        assert_eq!(backoff(&p, 2, Some(5), 0.5), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2, Some(60_000), 0.5), Duration::from_secs(1));
    }
}
