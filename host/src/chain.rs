//! A route's plugin chain: runs a batch of input records through every
//! plugin in order, the outputs of one feeding the next, and says what
//! became of each input.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_sdk::{Failure, Verdict};

use crate::correlation;
use crate::dlq::ErrorKind;
use crate::invoke::Invoker;
use crate::record::Record;
use crate::retry_topic;
use crate::runtime::Budgets;
use crate::sink::OutRecord;

/// What a route decided about one input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Produce these records (empty means nothing to produce, e.g. all dropped
    /// by a later plugin after an emit).
    Deliver(Vec<OutRecord>),
    /// Every record derived from the input was dropped.
    Dropped { reason: Option<String>, plugin: String },
    /// It failed; `retryable` failures are retried in place before the DLQ.
    Failed(Failed),
}

/// Why an input failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub kind: ErrorKind,
    pub message: String,
    /// `name@hash` of the plugin that failed; empty when the host decided.
    pub plugin: String,
    pub retryable: bool,
    /// A plugin's hint for the next backoff.
    pub delay_ms: Option<u64>,
}

/// The parts of a route the chain needs to resolve outputs.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Default output topics, for `pass` and for emits without a topic.
    pub outputs: Vec<String>,
    /// Topics plugins may emit to; includes `outputs`.
    pub allow: BTreeSet<String>,
}

/// One step of a chain: the plugin instance and the budgets that apply to it.
#[derive(Debug)]
pub struct Step {
    pub invoker: Invoker,
    pub budgets: Budgets,
}

/// A record on its way through the chain: which input it came from and where
/// it is going (`None`: the route's default outputs).
#[derive(Debug, Clone)]
struct InFlight {
    input: usize,
    record: Record,
    destination: Option<String>,
}

/// The header that names the plugin versions an output went through.
pub const LINEAGE: &str = "sluice.chain";

/// A route's chain with one long-lived instance per plugin.
#[derive(Debug)]
pub struct Chain {
    pub steps: Vec<Step>,
    pub targets: Arc<Targets>,
    /// `name@hash` of every step, comma-separated, stamped on each output in
    /// [`LINEAGE`] so that a reload's boundary is visible downstream. Empty:
    /// no stamp.
    pub lineage: Arc<str>,
}

impl Chain {
    /// Runs the batch through every step and returns one disposition per input.
    pub fn run(&mut self, inputs: &[Record]) -> Vec<Disposition> {
        self.run_observed(inputs, &mut |_, _, _| {})
    }

    /// [`Chain::run`], telling `observe` how long each plugin call took:
    /// (plugin `name@hash`, time, events in the call).
    pub fn run_observed(
        &mut self,
        inputs: &[Record],
        observe: &mut dyn FnMut(&str, Duration, usize),
    ) -> Vec<Disposition> {
        let mut failed: Vec<Option<Failed>> = vec![None; inputs.len()];
        let mut dropped: Vec<Option<(Option<String>, String)>> = vec![None; inputs.len()];
        let mut current: Vec<InFlight> = inputs
            .iter()
            .enumerate()
            .map(|(input, record)| InFlight { input, record: record.clone(), destination: None })
            .collect();

        for step in &mut self.steps {
            current.retain(|f| failed[f.input].is_none());
            if current.is_empty() {
                break;
            }
            // Borrowed: the records are encoded straight into the batch buffer.
            let records: Vec<&Record> = current.iter().map(|f| &f.record).collect();
            let started = Instant::now();
            let answers = step.invoker.run(&records);
            let plugin = step.invoker.plugin().version();
            observe(&plugin, started.elapsed(), records.len());
            let mut next = Vec::with_capacity(current.len());
            let mut emitted_count = vec![0usize; inputs.len()];
            let mut emitted_bytes = vec![0u64; inputs.len()];
            for (flight, answer) in current.into_iter().zip(answers) {
                let input = flight.input;
                if failed[input].is_some() {
                    continue;
                }
                let fail = |kind, message: String, retryable, delay_ms| {
                    Some(Failed { kind, message, plugin: plugin.clone(), retryable, delay_ms })
                };
                match answer {
                    Ok(Ok(Verdict::Pass)) => next.push(flight),
                    Ok(Ok(Verdict::Drop(reason))) => dropped[input] = Some((reason, plugin.clone())),
                    Ok(Ok(Verdict::Emit(outputs))) => {
                        emitted_count[input] += outputs.len();
                        emitted_bytes[input] += outputs.iter().map(output_size).sum::<u64>();
                        if emitted_count[input] > step.budgets.max_outputs {
                            let msg = format!(
                                "emitted {} records, over the budget of {}",
                                emitted_count[input], step.budgets.max_outputs
                            );
                            failed[input] = fail(ErrorKind::OutputBudget, msg, false, None);
                            continue;
                        }
                        if emitted_bytes[input] > step.budgets.max_output_bytes {
                            let msg = format!(
                                "emitted {} bytes, over the budget of {}",
                                emitted_bytes[input], step.budgets.max_output_bytes
                            );
                            failed[input] = fail(ErrorKind::OutputBudget, msg, false, None);
                            continue;
                        }
                        if let Some(topic) =
                            outputs.iter().filter_map(|o| o.topic.as_deref()).find(|t| !self.targets.allow.contains(*t))
                        {
                            let msg = format!(
                                "emitted to topic {topic:?}, which route allows only: {}",
                                list(&self.targets.allow)
                            );
                            failed[input] = fail(ErrorKind::ForbiddenTopic, msg, false, None);
                            continue;
                        }
                        if outputs.is_empty() {
                            dropped[input].get_or_insert((Some("emitted no records".into()), plugin.clone()));
                        }
                        for out in outputs {
                            let destination = out.topic.clone().or_else(|| flight.destination.clone());
                            let record = Record {
                                topic: out.topic.unwrap_or_else(|| flight.record.topic.clone()),
                                partition: flight.record.partition,
                                offset: flight.record.offset,
                                timestamp: flight.record.timestamp,
                                key: out.key,
                                value: out.value,
                                headers: out.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                                attempt: flight.record.attempt,
                            };
                            next.push(InFlight { input, record, destination });
                        }
                    }
                    Ok(Err(Failure::Retry { message, delay_ms })) => {
                        failed[input] = fail(ErrorKind::RetriesExhausted, message, true, delay_ms);
                    }
                    Ok(Err(Failure::Reject(message))) => {
                        failed[input] = fail(ErrorKind::Rejected, message, false, None);
                    }
                    Err(fault) => {
                        failed[input] = fail(ErrorKind::from_fault(fault.kind()), fault.to_string(), true, None);
                    }
                }
            }
            current = next;
        }
        current.retain(|f| failed[f.input].is_none());
        self.resolve(inputs, current, failed, dropped)
    }

    fn resolve(
        &self,
        inputs: &[Record],
        finished: Vec<InFlight>,
        mut failed: Vec<Option<Failed>>,
        mut dropped: Vec<Option<(Option<String>, String)>>,
    ) -> Vec<Disposition> {
        let mut outputs: Vec<Vec<OutRecord>> = vec![Vec::new(); inputs.len()];
        let mut reached_end = vec![false; inputs.len()];
        // Worked out only for inputs that produce something: it may parse the value.
        let mut correlation_ids: Vec<Option<String>> = vec![None; inputs.len()];
        for flight in finished {
            let input = flight.input;
            reached_end[input] = true;
            let topics: Vec<String> = match flight.destination {
                Some(topic) => vec![topic],
                None if self.targets.outputs.is_empty() => {
                    failed[input].get_or_insert(Failed {
                        kind: ErrorKind::NoOutputTopic,
                        message: "a record was to go to the route's default outputs, and the route has none".into(),
                        plugin: String::new(),
                        retryable: false,
                        delay_ms: None,
                    });
                    continue;
                }
                None => self.targets.outputs.clone(),
            };
            for topic in topics {
                let mut out = OutRecord {
                    topic,
                    timestamp: inputs[input].timestamp,
                    key: flight.record.key.clone(),
                    value: flight.record.value.clone(),
                    // Retry-tier bookkeeping belongs to this route alone.
                    headers: flight
                        .record
                        .headers
                        .iter()
                        .filter(|(name, _)| !name.starts_with(retry_topic::PREFIX))
                        .cloned()
                        .collect(),
                };
                let id = correlation_ids[input].get_or_insert_with(|| correlation::id_for(&inputs[input]));
                correlation::stamp(&mut out, id, &inputs[input]);
                if !self.lineage.is_empty() {
                    // An upstream route's stamp is replaced: one version per output.
                    out.headers.retain(|(name, _)| name != LINEAGE);
                    out.headers.push((LINEAGE.to_owned(), self.lineage.as_bytes().to_vec()));
                }
                outputs[input].push(out);
            }
        }
        (0..inputs.len())
            .map(|i| {
                if let Some(f) = failed[i].take() {
                    Disposition::Failed(f)
                } else if !reached_end[i] {
                    let (reason, plugin) = dropped[i].take().unwrap_or((None, String::new()));
                    Disposition::Dropped { reason, plugin }
                } else {
                    Disposition::Deliver(std::mem::take(&mut outputs[i]))
                }
            })
            .collect()
    }
}

fn output_size(o: &sluice_sdk::Output) -> u64 {
    let headers: usize = o.headers.iter().map(|h| h.name.len() + h.value.len()).sum();
    (o.key.as_ref().map_or(0, Vec::len) + o.value.as_ref().map_or(0, Vec::len) + headers) as u64
}

fn list(topics: &BTreeSet<String>) -> String {
    if topics.is_empty() { "none".into() } else { topics.iter().cloned().collect::<Vec<_>>().join(", ") }
}
