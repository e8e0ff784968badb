//! The measured window of one variant: from its first consumed event to
//! its last completed one, with the CPU it spent in between.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::usage;

/// What one variant process reports, as one JSON line on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measurement {
    /// Events completed (outputs acknowledged, offset stored).
    pub events: u64,
    pub secs: f64,
    pub cpu_secs: f64,
    pub peak_rss: u64,
}

impl Measurement {
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 { self.events as f64 / self.secs } else { 0.0 }
    }

    pub fn cpu_per_million(&self) -> f64 {
        if self.events > 0 { self.cpu_secs * 1e6 / self.events as f64 } else { 0.0 }
    }
}

/// The window opens when the first event has been consumed, so start-up
/// (joining the group, compiling plugins) is left out for every variant
/// alike, and closes when the last is completed.
#[derive(Debug, Default)]
pub struct Window {
    opened: Option<(Instant, Duration)>,
}

impl Window {
    pub fn observe(&mut self, consumed: u64) -> anyhow::Result<()> {
        if self.opened.is_none() && consumed > 0 {
            self.opened = Some((Instant::now(), usage::cpu_time()?));
        }
        Ok(())
    }

    pub fn close(self, completed: u64) -> anyhow::Result<Measurement> {
        let (at, cpu) = self.opened.ok_or_else(|| anyhow::anyhow!("no event was consumed"))?;
        Ok(Measurement {
            events: completed,
            secs: at.elapsed().as_secs_f64(),
            cpu_secs: (usage::cpu_time()?.saturating_sub(cpu)).as_secs_f64(),
            peak_rss: usage::peak_rss()?,
        })
    }
}
