//! `--rate N/s`: at most N records a second, evenly spaced, never in a burst
//! after a pause.

use std::str::FromStr;
use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

/// The highest rate accepted; above it the spacing is below a microsecond
/// and the limit means nothing.
const MAX_PER_SECOND: f64 = 1_000_000.0;

/// Records per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(f64);

impl Rate {
    pub fn per_second(self) -> f64 {
        self.0
    }

    fn period(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.0)
    }
}

impl FromStr for Rate {
    type Err = String;

    /// `100/s`, or a bare `100`; fractions such as `0.5/s` are fine.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let number = text.trim().strip_suffix("/s").unwrap_or(text.trim());
        match number.parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 && n <= MAX_PER_SECOND => Ok(Rate(n)),
            _ => Err(format!("\"{text}\" is not a rate; write N/s with 0 < N ≤ {MAX_PER_SECOND}, e.g. 100/s")),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/s", self.0)
    }
}

/// Spaces calls to [`Pacer::wait`] by the rate's period. The first wait
/// returns at once. After a pause (a slow broker) the next one does too,
/// and the spacing starts again from there: no catching up in a burst.
#[derive(Debug)]
pub struct Pacer {
    interval: Interval,
}

impl Pacer {
    pub fn new(rate: Rate) -> Self {
        let mut interval = tokio::time::interval(rate.period());
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Pacer { interval }
    }

    pub async fn wait(&mut self) {
        self.interval.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn rates_parse_with_or_without_the_unit_and_bad_ones_say_why() {
        assert_eq!("100/s".parse::<Rate>(), Ok(Rate(100.0)));
        assert_eq!(" 0.5/s ".parse::<Rate>(), Ok(Rate(0.5)));
        assert_eq!("7".parse::<Rate>(), Ok(Rate(7.0)));
        for bad in ["0/s", "-3/s", "fast", "NaN", "inf/s", "100/m", "2000000/s", ""] {
            let e = bad.parse::<Rate>().unwrap_err();
            assert!(e.contains(&format!("\"{bad}\" is not a rate")), "{e}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn n_records_at_r_per_second_take_n_minus_one_periods() {
        let mut pacer = Pacer::new("10/s".parse().unwrap());
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..21 {
            pacer.wait().await;
            at.push(start.elapsed());
        }
        assert_eq!(at[0], Duration::ZERO, "the first record goes at once");
        assert_eq!(at[20], Duration::from_secs(2));
        assert!(at.windows(2).all(|w| w[1] - w[0] == Duration::from_millis(100)), "{at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_pause_the_pacer_does_not_burst_to_catch_up() {
        let mut pacer = Pacer::new("10/s".parse().unwrap());
        pacer.wait().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let resumed = Instant::now();
        pacer.wait().await;
        pacer.wait().await;
        pacer.wait().await;
        assert_eq!(resumed.elapsed(), Duration::from_millis(200), "one at once, then spaced by 100ms");
    }
}
