//! The records each case consumes: synthetic values of a fixed size, or the
//! Olist order events the demo uses, repeated to the count asked for.

use rand::Rng as _;
use rand::distr::Alphanumeric;
use sluice::produce::Outgoing;

/// Keyed records with random alphanumeric values of `size` bytes, so that
/// lz4 cannot shrink them to nothing.
pub fn synthetic(count: u64, size: usize) -> Vec<Outgoing> {
    let mut rng = rand::rng();
    (0..count)
        .map(|i| Outgoing {
            key: Some(format!("k{i}")),
            value: (&mut rng).sample_iter(Alphanumeric).take(size).collect(),
            headers: Vec::new(),
        })
        .collect()
}

/// The Olist events of `config/demo/data`, cycled to `count` records.
pub fn olist(count: u64) -> anyhow::Result<Vec<Outgoing>> {
    let events = sluice::demo::olist::events_from_dir(&crate::host::olist_dir())?;
    anyhow::ensure!(!events.is_empty(), "the Olist slice holds no events");
    Ok(events
        .iter()
        .cycle()
        .take(count as usize)
        .map(|e| Outgoing { key: Some(e.key.clone()), value: e.value_bytes(), headers: Vec::new() })
        .collect())
}

/// Mean key + value bytes of a record: the payload MB/s is counted in.
pub fn mean_size(records: &[Outgoing]) -> f64 {
    let total: usize = records.iter().map(|r| r.key.as_ref().map_or(0, String::len) + r.value.len()).sum();
    total as f64 / records.len().max(1) as f64
}
