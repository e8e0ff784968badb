//! The Prometheus exposition for `GET /metrics`.
//!
//! Counters and gauges are read from [`Stats`] at scrape time, so the
//! pipeline's hot path counts once, in one place. Latencies cannot be
//! derived afterwards; they are histograms, recorded as they happen through
//! [`Histograms`].

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::control::Snapshot;
use crate::stats::{Event, Stats, plugin_name};

/// The `Content-Type` of the answer: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Failure kinds that mean a plugin ran out of a budget.
pub const BUDGET_KINDS: [&str; 3] = ["timeout", "memory", "output-budget"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    route: String,
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 50µs to about 1.6 s: one plugin call on one batch.
fn call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// 1 ms to about 65 s: from a record's timestamp to its outputs' acknowledgement.
fn end_to_end_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Latencies, recorded as they happen.
#[derive(Debug, Clone)]
pub struct Histograms {
    plugin_call: HistogramFamily<StepLabels>,
    plugin_events: Family<StepLabels, Counter>,
    end_to_end: HistogramFamily<RouteLabels>,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            plugin_call: Family::new_with_constructor(call_buckets),
            plugin_events: Family::default(),
            end_to_end: Family::new_with_constructor(end_to_end_buckets),
        }
    }
}

impl Histograms {
    /// One call of a plugin (`name@hash`) on a batch of `events`.
    pub fn plugin_call(&self, route: &str, plugin: &str, took: Duration, events: usize) {
        let labels = StepLabels { route: route.to_owned(), plugin: plugin_name(plugin).to_owned() };
        self.plugin_call.get_or_create(&labels).observe(took.as_secs_f64());
        self.plugin_events.get_or_create(&labels).inc_by(events as u64);
    }

    /// A route's end-to-end histogram, to keep and observe into.
    pub fn end_to_end(&self, route: &str) -> Histogram {
        self.end_to_end.get_or_create(&RouteLabels { route: route.to_owned() }).clone()
    }
}

/// Seconds from a record's timestamp (ms since the epoch) to `now_ms`; a
/// timestamp in the future counts as 0.
pub fn age_seconds(timestamp_ms: i64, now_ms: i64) -> f64 {
    (now_ms.saturating_sub(timestamp_ms)).max(0) as f64 / 1000.0
}

/// The exposition of everything `stats` and the snapshot hold.
pub fn encode(stats: &Arc<Stats>, snapshot: &Arc<Snapshot>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    let h = &stats.histograms;
    registry.register(
        "sluice_plugin_call_duration_seconds",
        "Time of one plugin call on one batch, including replays after a fault",
        h.plugin_call.clone(),
    );
    registry.register("sluice_plugin_events", "Events passed to a plugin", h.plugin_events.clone());
    registry.register(
        "sluice_end_to_end_latency_seconds",
        "From an input's timestamp to the acknowledgement of its outputs or DLQ record",
        h.end_to_end.clone(),
    );
    registry.register_collector(Box::new(Exported { stats: stats.clone(), snapshot: snapshot.clone() }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Counters and gauges, read from the stats on each scrape.
#[derive(Debug)]
struct Exported {
    stats: Arc<Stats>,
    snapshot: Arc<Snapshot>,
}

type Labels = Vec<(&'static str, String)>;

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, u64)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, i64)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Exported {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let stats = &self.stats;
        let by_route = stats.route_counters();
        // Every configured route shows every per-route counter, from 0.
        let mut routes: Vec<String> = self.snapshot.routes.iter().map(|r| r.name.clone()).collect();
        routes.extend(by_route.iter().map(|((r, _), _)| r.clone()));
        routes.sort();
        routes.dedup();
        for (event, help) in [
            (Event::Consumed, "Input records taken by a partition worker"),
            (Event::Delivered, "Inputs whose outputs were handed to the producer"),
            (Event::Emitted, "Output records handed to the producer"),
            (Event::Completed, "Inputs whose outputs or DLQ record are acknowledged and whose offset is stored"),
        ] {
            let rows = routes.iter().map(|route| {
                let n = by_route.iter().find(|((r, e), _)| r == route && *e == event).map_or(0, |(_, n)| *n);
                (vec![("route", route.clone())], n)
            });
            counter(&mut encoder, &format!("sluice_events_{}", event.as_str()), help, rows)?;
        }
        let by_plugin = stats.plugin_counters();
        for (event, help) in [
            (Event::Dropped, "Inputs with nothing to produce, by the plugin that dropped them (empty: none did)"),
            (Event::Retried, "Retries of an input, by the plugin that failed on it"),
            (
                Event::SentToRetryTopic,
                "Inputs sent on to a retry topic when their in-place retries ran out, by the plugin that failed on it",
            ),
        ] {
            let rows = by_plugin
                .iter()
                .filter(|((_, _, e), _)| *e == event)
                .map(|((route, plugin, _), n)| (vec![("route", route.clone()), ("plugin", plugin.clone())], *n));
            counter(&mut encoder, &format!("sluice_events_{}", event.as_str()), help, rows)?;
        }
        let step_kind = |((route, plugin, kind), n): &((String, String, &'static str), u64)| -> (Labels, u64) {
            (vec![("route", route.clone()), ("plugin", plugin.clone()), ("kind", (*kind).to_owned())], *n)
        };
        counter(
            &mut encoder,
            "sluice_events_dead_lettered",
            "Inputs sent to the DLQ, by error kind and the plugin at fault (empty: the host decided)",
            stats.dead_letters().iter().map(step_kind),
        )?;
        let failures = stats.failures();
        counter(
            &mut encoder,
            "sluice_plugin_errors",
            "Failed attempts, retried or not, by error kind: faults (trap, timeout, memory, bad-response) and verdicts",
            failures.iter().map(step_kind),
        )?;
        counter(
            &mut encoder,
            "sluice_budget_exhausted",
            "Attempts that ran out of a budget: timeout, memory or output-budget",
            failures.iter().filter(|((_, _, kind), _)| BUDGET_KINDS.contains(kind)).map(step_kind),
        )?;
        let reloads = stats.reload_counters();
        for (ok, name, help) in [
            (true, "sluice_reloads", "Reloads applied, by kind (config or plugin)"),
            (false, "sluice_reload_failures", "Reloads refused, by kind (config or plugin); the old one serves on"),
        ] {
            let rows = reloads
                .iter()
                .filter(|((_, o), _)| *o == ok)
                .map(|((kind, _), n)| (vec![("kind", (*kind).to_owned())], *n));
            counter(&mut encoder, name, help, rows)?;
        }
        counter(
            &mut encoder,
            "sluice_partition_workers_started",
            "Partition workers started, by route: assignments and restarts",
            stats.started_counters().into_iter().map(|(route, n)| (vec![("route", route)], n)),
        )?;

        let partitions = stats.partitions.list();
        gauge(
            &mut encoder,
            "sluice_consumer_lag",
            "Records in the partition after the stored offset, as of librdkafka's last statistics report",
            partitions.iter().filter_map(|p| {
                let labels = vec![("topic", p.topic.clone()), ("partition", p.partition.to_string())];
                Some((labels, p.lag?))
            }),
        )?;
        let mut in_flight: Vec<(String, i64)> = routes.iter().map(|r| (r.clone(), 0)).collect();
        for p in &partitions {
            if let Some(slot) = in_flight.iter_mut().find(|(r, _)| Some(r) == p.route.as_ref()) {
                slot.1 += p.in_flight as i64;
            }
        }
        gauge(
            &mut encoder,
            "sluice_in_flight_events",
            "Records consumed and not yet completed",
            in_flight.into_iter().map(|(route, n)| (vec![("route", route)], n)),
        )?;
        gauge(
            &mut encoder,
            "sluice_partitions_assigned",
            "Partitions assigned to this host",
            [(Vec::new(), partitions.len() as i64)],
        )?;
        gauge(
            &mut encoder,
            "sluice_ready",
            "1 when /readyz answers 200",
            [(Vec::new(), i64::from(stats.not_ready().is_none()))],
        )?;
        gauge(
            &mut encoder,
            "sluice_plugin_info",
            "The plugin version serving now, as name@hash",
            self.snapshot
                .plugins
                .iter()
                .map(|p| (vec![("plugin", p.name.clone()), ("version", p.current.version.clone())], 1)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_clamp_at_zero() {
        assert_eq!(age_seconds(1_000, 3_500), 2.5);
        assert_eq!(age_seconds(5_000, 3_500), 0.0);
    }

    #[test]
    fn the_exposition_parses_and_carries_every_family() {
        let stats = Arc::new(Stats::default());
        stats.add("r", Event::Consumed, 3);
        stats.dropped("r", "p@1");
        stats.reload("config", false);
        stats.histograms.plugin_call("r", "p@1", Duration::from_millis(3), 3);
        let text = encode(&stats, &Arc::default()).unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let value = |name: &str| {
            scrape.samples.iter().find(|s| s.metric == name).map(|s| format!("{:?}", s.value)).unwrap_or_default()
        };
        assert_eq!(value("sluice_events_consumed_total"), "Counter(3.0)", "{text}");
        assert_eq!(value("sluice_events_dropped_total"), "Counter(1.0)", "{text}");
        assert_eq!(value("sluice_reload_failures_total"), "Counter(1.0)", "{text}");
        assert_eq!(value("sluice_events_delivered_total"), "Counter(0.0)", "every route's counters start at 0");
        let call = scrape.samples.iter().find(|s| s.metric == "sluice_plugin_call_duration_seconds").unwrap();
        assert_eq!(call.labels.get("plugin"), Some("p"));
        assert!(matches!(&call.value, prometheus_parse::Value::Histogram(_)), "{text}");
    }
}
