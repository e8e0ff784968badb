//! One partition's worker: takes its records in order, runs them through the
//! route's chain in batches, retries failures in place with backoff, and
//! hands outputs and dead letters to the producer. Offsets flow one way, as
//! values, to the partition's acknowledger.

use std::sync::Arc;
use std::time::SystemTime;

use rdkafka::producer::DeliveryFuture;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::chain::{Chain, Disposition, Failed};
use crate::config::{RetryPolicy, RetryTopic};
use crate::dead_letters;
use crate::dlq::ErrorKind;
use crate::offsets::Pending;
use crate::record::Record;
use crate::retry;
use crate::retry_topic::{self, Next};
use crate::route_version::RouteVersion;
use crate::sink::{OutRecord, Sink};
use crate::stats::{Event, Stats};

/// What a worker needs to know about its route.
#[derive(Debug, Clone)]
pub struct RouteContext {
    pub name: String,
    pub group: String,
    pub dlq: String,
    pub retry: RetryPolicy,
    /// Where records go, in order, when their in-place retries run out.
    pub retry_topics: Vec<RetryTopic>,
    pub batch_size: usize,
}

/// A partition's worker. Owns the chain's instances for as long as it runs.
#[derive(Debug)]
pub struct Worker {
    pub chain: Chain,
    pub route: Arc<RouteContext>,
    /// The route's published versions; a new one is taken up between
    /// batches. `None`: the route never changes.
    pub versions: Option<watch::Receiver<Arc<RouteVersion>>>,
    pub sink: Sink,
    pub acks: mpsc::UnboundedSender<Pending>,
    pub stats: Arc<Stats>,
    pub cancel: CancellationToken,
}

impl Worker {
    /// Processes records until the channel closes or the worker is cancelled.
    pub async fn run(mut self, mut records: mpsc::Receiver<Record>) {
        // A retry-tier record taken from the queue before it was due: the
        // first of the next batch.
        let mut held: Option<Record> = None;
        loop {
            let mut first = match held.take() {
                Some(record) => record,
                None => tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => return,
                    next = records.recv() => match next {
                        Some(record) => record,
                        None => return,
                    },
                },
            };
            // Waiting here fills the partition's queue, and the source pauses
            // the partition: the poll loop never sleeps.
            if let Some(wait) = retry_topic::due_in(&first, &self.route.retry_topics, SystemTime::now()) {
                tracing::debug!(route = %self.route.name, topic = %first.topic, partition = first.partition,
                    offset = first.offset, ?wait, "retry-topic record not yet due; holding its partition");
                tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            retry_topic::resume(&mut first, &self.route.retry_topics);
            let mut batch = vec![first];
            // One clock reading for the batch: it is formed in microseconds.
            let now = SystemTime::now();
            while batch.len() < self.route.batch_size {
                match records.try_recv() {
                    Ok(record) if retry_topic::due_in(&record, &self.route.retry_topics, now).is_some() => {
                        held = Some(record);
                        break;
                    }
                    Ok(mut record) => {
                        retry_topic::resume(&mut record, &self.route.retry_topics);
                        batch.push(record);
                    }
                    Err(_) => break,
                }
            }
            self.stats.add(&self.route.name, Event::Consumed, batch.len() as u64);
            if let Some(versions) = &self.versions
                && versions.has_changed().unwrap_or(false)
            {
                self.take_new_version().await;
            }
            if !self.process(batch).await {
                return;
            }
        }
    }

    /// Runs a batch to completion: every record delivered, dropped or dead-
    /// lettered, in order. The batch runs through the chain once; a record
    /// that failed transiently is then retried alone, after a backoff, while
    /// the records behind it wait with the answers they already got. So a
    /// record is never run twice for a neighbour's sake, and a batch of
    /// faulting records costs one batch call plus each record's own retries.
    /// Returns false if cancelled meanwhile.
    async fn process(&mut self, batch: Vec<Record>) -> bool {
        let Some((records, dispositions)) = self.run_chain(batch).await else { return false };
        for (record, disposition) in records.into_iter().zip(dispositions) {
            if !self.settle(record, disposition).await {
                return false;
            }
        }
        true
    }

    /// Retries one record in place until it is delivered, dropped or given
    /// up on. Returns false if cancelled meanwhile.
    async fn settle(&mut self, mut record: Record, mut disposition: Disposition) -> bool {
        // Sandbox faults of this record, on this pass and earlier ones: the poison-pill breaker.
        let mut faults = retry_topic::earlier_faults(&record, &self.route.retry_topics);
        // Attempts count across retry tiers; the in-place policy counts this pass.
        let pass_start = record.attempt;
        loop {
            if let Disposition::Failed(f) = &disposition {
                self.stats.failed(&self.route.name, &f.plugin, f.kind, &record, &f.message);
            }
            let mut failed = match disposition {
                Disposition::Failed(f) if f.retryable => f,
                Disposition::Failed(f) => {
                    self.dead_letter(&record, f).await;
                    return true;
                }
                Disposition::Deliver(outputs) => {
                    self.deliver(record, outputs).await;
                    return true;
                }
                Disposition::Dropped { plugin, .. } => {
                    self.stats.dropped(&self.route.name, &plugin);
                    self.pend(record.offset, None, Vec::new(), Vec::new());
                    return true;
                }
            };
            let policy = self.route.retry;
            if failed.kind.is_fault() {
                faults += 1;
                if faults >= policy.max_faults {
                    failed.message = format!(
                        "poison pill: the plugin faulted on {faults} attempts (retry.max_faults = {}); last: {}",
                        policy.max_faults, failed.message
                    );
                    self.dead_letter(&record, failed).await;
                    return true;
                }
            }
            let pass_attempt = record.attempt - pass_start + 1;
            if pass_attempt >= policy.max_attempts {
                self.retries_ran_out(&record, failed, faults).await;
                return true;
            }
            let next_attempt = record.attempt + 1;
            let delay = retry::backoff_random(&policy, pass_attempt + 1, failed.delay_ms);
            self.stats.retried(&self.route.name, &failed.plugin, &record, delay);
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return false,
                () = tokio::time::sleep(delay) => {}
            }
            record.attempt = next_attempt;
            let Some((mut records, mut dispositions)) = self.run_chain(vec![record]).await else { return false };
            let (Some(again), Some(answer)) = (records.pop(), dispositions.pop()) else {
                // The chain answers every record it is given; anything else is a host bug.
                tracing::error!(route = %self.route.name, "the chain gave no answer for a retried record; stopping this partition's worker");
                self.cancel.cancel();
                return false;
            };
            record = again;
            disposition = answer;
        }
    }

    /// Swaps in the route's latest version: this is the event boundary a
    /// reload promises. A version whose instances cannot be created here is
    /// skipped (the reload already checked it once), and the old one serves on.
    async fn take_new_version(&mut self) {
        let Some(versions) = &mut self.versions else { return };
        let version = versions.borrow_and_update().clone();
        let built = tokio::task::spawn_blocking({
            let version = version.clone();
            move || version.chain()
        })
        .await;
        match built {
            Ok(Ok(chain)) => {
                tracing::info!(route = %version.context.name, chain = %version.lineage, from = %self.chain.lineage,
                    "partition switched to a new route version");
                self.chain = chain;
                self.route = version.context.clone();
            }
            Ok(Err(e)) => {
                tracing::error!(route = %self.route.name, chain = %version.lineage, error = %format!("{e:#}"),
                "cannot instantiate the new route version here; the previous one serves on")
            }
            Err(e) => tracing::error!(route = %self.route.name, error = %e, "building the new route version panicked"),
        }
    }

    /// Plugin calls are CPU-bound and synchronous; they run on the blocking
    /// pool so the async threads keep polling and acknowledging.
    async fn run_chain(&mut self, queue: Vec<Record>) -> Option<(Vec<Record>, Vec<Disposition>)> {
        let placeholder =
            Chain { steps: Vec::new(), targets: self.chain.targets.clone(), lineage: self.chain.lineage.clone() };
        let chain = std::mem::replace(&mut self.chain, placeholder);
        let at = queue.first().map(|r| (r.topic.clone(), r.partition));
        let (stats, route) = (self.stats.clone(), self.route.name.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let mut chain = chain;
            let mut observe = |plugin: &str, took, events| stats.histograms.plugin_call(&route, plugin, took, events);
            let dispositions = chain.run_observed(&queue, &mut observe);
            (chain, queue, dispositions)
        })
        .await;
        match joined {
            Ok((chain, queue, dispositions)) => {
                self.chain = chain;
                Some((queue, dispositions))
            }
            Err(e) => {
                // The chain isolates plugin faults; a panic here is a host bug.
                let (topic, partition) = at.unwrap_or_default();
                self.stats.worker_stopped(&self.route.name, &topic, partition, &e.to_string());
                self.cancel.cancel();
                None
            }
        }
    }

    async fn deliver(&mut self, record: Record, outputs: Vec<OutRecord>) {
        let route = self.route.name.clone();
        if outputs.is_empty() {
            self.stats.dropped(&route, "");
            self.pend(record.offset, None, Vec::new(), Vec::new());
            return;
        }
        let mut deliveries = Vec::with_capacity(outputs.len());
        for out in outputs {
            match self.sink.send(&out).await {
                Ok(delivery) => deliveries.push((out, delivery)),
                Err(e) => {
                    let failed = Failed {
                        kind: ErrorKind::ProduceRefused,
                        message: format!("the producer refused an output to {}: {e}", out.topic),
                        plugin: String::new(),
                        retryable: false,
                        delay_ms: None,
                    };
                    // Outputs already handed over stay; the DLQ record explains the rest.
                    self.dead_letter_with(&record, failed, deliveries).await;
                    return;
                }
            }
        }
        self.stats.add(&route, Event::Delivered, 1);
        self.stats.add(&route, Event::Emitted, deliveries.len() as u64);
        let offset = record.offset;
        let input = retry_topic::original(record, &self.route.retry_topics);
        self.pend(offset, Some(input), deliveries, Vec::new());
    }

    /// The next retry tier, or the DLQ after the last.
    async fn retries_ran_out(&mut self, record: &Record, failed: Failed, faults: u32) {
        let tiers = &self.route.retry_topics;
        let Next::Tier(tier) = retry_topic::next(&record.topic, tiers) else {
            return self.dead_letter(record, failed).await;
        };
        let failure =
            retry_topic::Failure { kind: failed.kind, message: &failed.message, plugin: &failed.plugin, faults };
        let out = retry_topic::record(record, tiers, tier, failure, SystemTime::now());
        match self.sink.send(&out).await {
            Ok(delivery) => {
                self.stats.sent_to_retry_topic(&self.route.name, &failed.plugin, record, &tier.topic);
                // A tier record refused for good dead-letters the event instead.
                let input = retry_topic::original(record.clone(), &self.route.retry_topics);
                self.pend(record.offset, Some(input), vec![(out, delivery)], Vec::new());
            }
            Err(e) => {
                let failed = Failed {
                    message: format!(
                        "{}; and the producer refused it to retry topic {}: {e}",
                        failed.message, tier.topic
                    ),
                    ..failed
                };
                self.dead_letter(record, failed).await;
            }
        }
    }

    async fn dead_letter(&mut self, record: &Record, failed: Failed) {
        self.dead_letter_with(record, failed, Vec::new()).await;
    }

    /// Dead-letters `record` beside the outputs of it already handed over.
    async fn dead_letter_with(&mut self, record: &Record, failed: Failed, outputs: Vec<(OutRecord, DeliveryFuture)>) {
        // A record from a retry tier is dead-lettered as the event it was.
        let original = retry_topic::original(record.clone(), &self.route.retry_topics);
        let dead = dead_letters::send(&self.sink, &self.stats, &self.route, &original, failed).await;
        self.pend(record.offset, None, outputs, vec![dead]);
    }

    fn pend(
        &self,
        offset: i64,
        input: Option<Record>,
        outputs: Vec<(OutRecord, DeliveryFuture)>,
        dead_letters: Vec<(OutRecord, DeliveryFuture)>,
    ) {
        // The acknowledger outlives the worker; a closed channel means the
        // partition was revoked, and its records will be consumed again.
        let _ = self.acks.send(Pending { offset, input, route: self.route.clone(), outputs, dead_letters });
    }
}
