//! In-order completion per partition: an input's offset is stored only once
//! every record it caused (outputs or its DLQ record) is acknowledged, and
//! only after every earlier input's, so the stored offset is a contiguous
//! watermark.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rdkafka::producer::DeliveryFuture;
use tokio::sync::mpsc;

use crate::chain::Failed;
use crate::dead_letters;
use crate::dlq::ErrorKind;
use crate::metrics;
use crate::partition::RouteContext;
use crate::record::Record;
use crate::sink::{OutRecord, Sink};
use crate::stats::{Event, Stats};

/// One input's records, handed to the producer, awaiting acknowledgement.
pub struct Pending {
    pub offset: i64,
    /// The input itself, kept while its outputs are in flight: an output the
    /// broker refuses for good dead-letters it. `None` when it has no outputs.
    pub input: Option<Record>,
    /// The route as it was when the input ran (a reload may change its DLQ).
    pub route: Arc<RouteContext>,
    pub outputs: Vec<(OutRecord, DeliveryFuture)>,
    pub dead_letters: Vec<(OutRecord, DeliveryFuture)>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("offset", &self.offset)
            .field("outputs", &self.outputs.len())
            .field("dead_letters", &self.dead_letters.len())
            .finish_non_exhaustive()
    }
}

/// Stores the next offset to consume (`offset + 1`) for this partition.
pub type StoreOffset = Box<dyn Fn(i64) + Send + Sync>;

/// Awaits each input's deliveries in arrival order and stores offsets as they
/// complete. A failed delivery is produced again until it succeeds: the
/// offset never moves past a record that is not safely written. A record
/// refused for good is accounted for instead: an output by its input's dead
/// letter, a dead letter by its stub.
pub async fn acknowledge_in_order(
    mut pending: mpsc::UnboundedReceiver<Pending>,
    sink: Sink,
    store: StoreOffset,
    stats: Arc<Stats>,
    route: String,
) {
    let end_to_end = stats.histograms.end_to_end(&route);
    while let Some(Pending { offset, input, route: context, outputs, dead_letters: mut letters }) = pending.recv().await
    {
        // Every output and DLQ record of an input carries the input's timestamp.
        let timestamp = outputs.first().or(letters.first()).and_then(|(record, _)| record.timestamp);
        let mut refused = false;
        for (record, delivery) in outputs {
            let Err(e) = dead_letters::confirm(&sink, &record, delivery).await else { continue };
            match &input {
                Some(input) if !refused && letters.is_empty() => {
                    let failed = Failed {
                        kind: ErrorKind::ProduceRefused,
                        message: format!("the broker refused an output to {}: {e}", record.topic),
                        plugin: String::new(),
                        retryable: false,
                        delay_ms: None,
                    };
                    letters.push(dead_letters::send(&sink, &stats, &context, input, failed).await);
                    refused = true;
                }
                // The input's DLQ record already accounts for it.
                _ => tracing::warn!(route = %context.name, topic = %record.topic, offset, error = %e,
                    "the broker refused another output of a dead-lettered input"),
            }
        }
        for (record, delivery) in letters {
            dead_letters::confirm_letter(&sink, record, delivery).await;
        }
        if let Some(timestamp) = timestamp {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            end_to_end.observe(metrics::age_seconds(timestamp, now));
        }
        store(offset + 1);
        stats.add(&route, Event::Completed, 1);
    }
}
