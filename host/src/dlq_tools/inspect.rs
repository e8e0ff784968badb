//! `sluice dlq inspect`: what a DLQ holds, counted and sampled, without
//! committing anything.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::filter::Filter;
use super::report::{Counts, Sample};
use super::{Connection, Range, Reader, Start};

/// What to inspect.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    pub connection: Connection,
    pub topic: String,
    pub filter: Filter,
    /// Sample records to show, at most.
    pub samples: usize,
}

/// What the DLQ held when inspect started.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub topic: String,
    pub filter: String,
    /// Per partition: first offset and the snapshot's end offset.
    pub partitions: BTreeMap<i32, Range>,
    /// Records read.
    pub records: u64,
    /// Records matching the filter; the counts and samples are of these.
    pub matched: u64,
    /// Matching records without `sluice.dlq.*` headers.
    pub foreign: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub samples: Vec<Sample>,
}

/// Reads the whole DLQ up to its end offsets at the start. The consumer has
/// a group of its own and never commits, so the read leaves no trace.
pub async fn run(options: &InspectOptions) -> anyhow::Result<Inspection> {
    let group = format!("sluice-inspect-{}", std::process::id());
    let mut reader = Reader::open(&options.connection, &options.topic, &group, Start::Earliest)?;
    let mut inspection = Inspection {
        topic: options.topic.clone(),
        filter: options.filter.to_string(),
        partitions: reader.ranges().clone(),
        records: 0,
        matched: 0,
        foreign: 0,
        counts: Counts::default(),
        samples: Vec::new(),
    };
    while let Some(entry) = reader.next().await? {
        inspection.records += 1;
        if !options.filter.matches(&entry) {
            continue;
        }
        inspection.matched += 1;
        inspection.foreign += u64::from(!entry.is_dead_letter());
        inspection.counts.add(&entry);
        if inspection.samples.len() < options.samples {
            inspection.samples.push(Sample::new(&options.topic, &entry));
        }
    }
    Ok(inspection)
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ends: Vec<String> = self.partitions.iter().map(|(p, r)| format!("{p}:{}..{}", r.low, r.end)).collect();
        writeln!(
            f,
            "{}: {} records in {} partitions (offsets {})",
            self.topic,
            self.records,
            self.partitions.len(),
            ends.join(" ")
        )?;
        writeln!(f, "matching {}: {}", self.filter, self.matched)?;
        if self.foreign > 0 {
            writeln!(f, "without sluice.dlq.* headers (counted as unknown): {}", self.foreign)?;
        }
        self.counts.write(f)?;
        if !self.samples.is_empty() {
            writeln!(f, "samples ({} of {}):", self.samples.len(), self.matched)?;
            for sample in &self.samples {
                writeln!(f, "  {sample}")?;
            }
        }
        Ok(())
    }
}
