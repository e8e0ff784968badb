//! Producing records so that none is refused forever: a permanent refusal
//! (a record too large for the producer or the topic) of an output turns
//! into a dead letter for its input, and of a dead letter into a stub
//! without the value. Transient failures are produced again, holding the
//! partition, since the offset must not move past an unwritten record.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;

use crate::chain::Failed;
use crate::dlq::{self, DeadLetter};
use crate::partition::RouteContext;
use crate::record::Record;
use crate::sink::{self, OutRecord, Sink};
use crate::stats::Stats;

const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Builds, logs, counts and hands to the producer the dead letter for
/// `input`. A letter the producer refuses for good is replaced by its stub.
pub async fn send(
    sink: &Sink,
    stats: &Stats,
    route: &RouteContext,
    input: &Record,
    failed: Failed,
) -> (OutRecord, DeliveryFuture) {
    let letter = DeadLetter {
        kind: failed.kind,
        message: failed.message,
        plugin: failed.plugin,
        route: route.name.clone(),
        group: route.group.clone(),
        attempts: input.attempt,
    };
    stats.dead_lettered(input, &letter);
    let out = dlq::record(input, &letter, &route.dlq);
    send_letter(sink, out).await
}

/// Hands a DLQ record to the producer, falling back to its stub when the
/// record itself is refused. Only a refused stub holds the partition: the
/// DLQ topic cannot take even the headers, which the operator must fix.
async fn send_letter(sink: &Sink, mut out: OutRecord) -> (OutRecord, DeliveryFuture) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match sink.send(&out).await {
            Ok(delivery) => return (out, delivery),
            Err(e) if sink::is_permanent(&e) && !dlq::is_stub(&out) => {
                out = stub(&out, &e);
            }
            Err(e) => {
                tracing::error!(dlq = %out.topic, error = %e, "the producer refuses the DLQ record; holding the partition");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn stub(out: &OutRecord, error: &KafkaError) -> OutRecord {
    tracing::warn!(dlq = %out.topic, error = %error, value_bytes = out.value.as_ref().map_or(0, Vec::len),
        "the DLQ record is refused for good; producing a stub without the value instead");
    dlq::stub(out, &error.to_string())
}

/// How often the broker may refuse a record as too large before it is taken
/// at its word. The broker judges whole batches, and librdkafka does not
/// split one: a small record batched with a large one is refused with it,
/// and goes through when produced again on its own.
const BROKER_REFUSALS: u32 = 3;

/// Waits until `record` is written. Transient failures are produced again
/// with backoff; a permanent refusal is returned, since trying again cannot
/// cure it.
pub async fn confirm(sink: &Sink, record: &OutRecord, mut delivery: DeliveryFuture) -> Result<(), KafkaError> {
    let mut backoff = Duration::from_millis(100);
    let mut refusals = 0;
    loop {
        let error = match delivery.await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err((e, _))) if sink::is_permanent(&e) => {
                refusals += 1;
                if refusals >= BROKER_REFUSALS {
                    return Err(e);
                }
                e.to_string()
            }
            Ok(Err((e, _))) => e.to_string(),
            Err(_) => "the producer dropped the delivery report".to_owned(),
        };
        tracing::warn!(topic = %record.topic, %error, retry_in = ?backoff, "delivery failed; producing the record again");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        delivery = loop {
            match sink.send(record).await {
                Ok(d) => break d,
                Err(e) if sink::is_permanent(&e) => return Err(e),
                Err(e) => {
                    tracing::error!(topic = %record.topic, error = %e, "producer refuses the record; holding the partition");
                    tokio::time::sleep(backoff).await;
                }
            }
        };
    }
}

/// Waits until a DLQ record, or failing that its stub, is written.
pub async fn confirm_letter(sink: &Sink, mut record: OutRecord, mut delivery: DeliveryFuture) {
    loop {
        let Err(e) = confirm(sink, &record, delivery).await else { return };
        if dlq::is_stub(&record) {
            tracing::error!(dlq = %record.topic, error = %e,
                "the broker refuses even the DLQ stub; holding the partition (raise the DLQ topic's max.message.bytes)");
            tokio::time::sleep(MAX_BACKOFF).await;
        } else {
            record = stub(&record, &e);
        }
        (record, delivery) = send_letter(sink, record).await;
    }
}
