//! In-order completion per partition: an input's offset is stored only once
//! every record it caused (outputs or its DLQ record) is acknowledged, and
//! only after every earlier input's, so the stored offset is a contiguous
//! watermark.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::producer::DeliveryFuture;
use tokio::sync::mpsc;

use crate::metrics;
use crate::sink::{OutRecord, Sink};
use crate::stats::{Event, Stats};

/// One input's records, handed to the producer, awaiting acknowledgement.
pub struct Pending {
    pub offset: i64,
    pub deliveries: Vec<(OutRecord, DeliveryFuture)>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("offset", &self.offset).field("deliveries", &self.deliveries.len()).finish()
    }
}

/// Stores the next offset to consume (`offset + 1`) for this partition.
pub type StoreOffset = Box<dyn Fn(i64) + Send + Sync>;

/// Awaits each input's deliveries in arrival order and stores offsets as they
/// complete. A failed delivery is produced again until it succeeds: the
/// offset never moves past a record that is not safely written.
pub async fn acknowledge_in_order(
    mut pending: mpsc::UnboundedReceiver<Pending>,
    sink: Sink,
    store: StoreOffset,
    stats: Arc<Stats>,
    route: String,
) {
    let end_to_end = stats.histograms.end_to_end(&route);
    while let Some(Pending { offset, deliveries }) = pending.recv().await {
        // Every output of an input carries the input's timestamp.
        let timestamp = deliveries.first().and_then(|(record, _)| record.timestamp);
        for (record, delivery) in deliveries {
            wait_delivered(&sink, record, delivery).await;
        }
        if let Some(timestamp) = timestamp {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            end_to_end.observe(metrics::age_seconds(timestamp, now));
        }
        store(offset + 1);
        stats.add(&route, Event::Completed, 1);
    }
}

async fn wait_delivered(sink: &Sink, record: OutRecord, mut delivery: DeliveryFuture) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let error = match delivery.await {
            Ok(Ok(_)) => return,
            Ok(Err((e, _))) => e.to_string(),
            Err(_) => "the producer dropped the delivery report".to_owned(),
        };
        tracing::warn!(topic = %record.topic, %error, retry_in = ?backoff, "delivery failed; producing the record again");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
        delivery = loop {
            match sink.send(&record).await {
                Ok(d) => break d,
                Err(e) => {
                    tracing::error!(topic = %record.topic, error = %e, "producer refuses the record; holding the partition");
                    tokio::time::sleep(backoff).await;
                }
            }
        };
    }
}
