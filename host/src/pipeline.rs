//! `sluice run`: wires config, plugins, consumer, workers and producer
//! together, and shuts them down in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::chain::{Chain, Step, Targets};
use crate::config::{Bootstrap, Config, LoadOptions, Route};
use crate::invoke::Invoker;
use crate::kafka::{self, EmbeddedBroker};
use crate::offsets;
use crate::partition::{RouteContext, Worker};
use crate::runtime::{LoadedPlugin, Runtime};
use crate::sink::Sink;
use crate::source::{self, Feed, SourceConsumer, SourceContext};
use crate::stats::Stats;
use crate::tables::Tables;

/// How long shutdown waits for the final synchronous commit.
const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(10);

/// A route ready to serve partitions: its plugins compiled once, instantiated
/// per partition.
struct ReadyRoute {
    route: Route,
    plugins: Vec<Arc<LoadedPlugin>>,
    context: Arc<RouteContext>,
    targets: Arc<Targets>,
}

impl ReadyRoute {
    fn chain(&self, tables: &Arc<Tables>) -> anyhow::Result<Chain> {
        let steps = self
            .route
            .chain
            .iter()
            .zip(&self.plugins)
            .map(|(step, plugin)| {
                let invoker = Invoker::new(plugin.clone(), step.config.clone(), tables.clone(), step.budgets)?;
                Ok(Step { invoker, budgets: step.budgets })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Chain { steps, targets: self.targets.clone() })
    }
}

/// A running partition: the feed to its worker and the tasks to stop.
struct Partition {
    feed: Feed,
    cancel: CancellationToken,
}

/// Handles to a running pipeline, for the demo and tests.
#[derive(Clone, Debug)]
pub struct Handle {
    pub stats: Arc<Stats>,
    pub shutdown: CancellationToken,
    /// How the config was loaded, so that a reload loads it the same way.
    pub options: LoadOptions,
    /// The admin server's address once it listens.
    pub admin: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
}

impl Handle {
    pub fn new(options: LoadOptions) -> Self {
        Handle {
            stats: Arc::default(),
            shutdown: CancellationToken::new(),
            options,
            admin: Arc::default(),
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Committed offsets at shutdown, by (topic, partition).
    pub committed: HashMap<(String, i32), i64>,
}

/// The address of the broker a config names, starting the embedded one when
/// asked. The broker lives as long as the returned guard.
pub fn connect(config: &Config) -> anyhow::Result<(String, Option<EmbeddedBroker>)> {
    match &config.broker.bootstrap {
        Bootstrap::Servers(servers) => Ok((servers.clone(), None)),
        Bootstrap::Embedded => {
            let broker = EmbeddedBroker::start()?;
            let address = broker.bootstrap();
            tracing::info!(bootstrap = %address, "embedded broker listening");
            eprintln!("sluice: embedded broker listening on {address}");
            Ok((address, Some(broker)))
        }
    }
}

/// Runs until `handle.shutdown` is cancelled, then drains within the grace
/// period and commits.
pub async fn run(config: Config, bootstrap: String, handle: Handle) -> anyhow::Result<RunReport> {
    let runtime = Runtime::new()?;
    let tables = Arc::new(config.load_tables()?);
    let routes = prepare_routes(&config, &runtime)?;

    let producer_props = config.producer_properties();
    let producer: FutureProducer =
        kafka::producer_config(&bootstrap, &producer_props).create().context("cannot create the producer")?;
    let sink = Sink::new(producer);

    let consumer_props = config.consumer_properties();
    let consumer: Arc<SourceConsumer> = Arc::new(
        kafka::consumer_config(&bootstrap, &config.broker.group, &consumer_props)
            .create_with_context(SourceContext::default())
            .context("cannot create the consumer")?,
    );
    let topics = config.input_topics();
    consumer.subscribe(&topics).context("cannot subscribe")?;
    tracing::info!(?topics, group = %config.broker.group, "consuming");

    let mut partitions: HashMap<(String, i32), Partition> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            biased;
            () = handle.shutdown.cancelled() => break,
            message = consumer.recv() => {
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "consumer error");
                        continue;
                    }
                };
                let record = source::to_record(&message);
                drop(message);
                let key = (record.topic.clone(), record.partition);
                if !partitions.contains_key(&key) {
                    let Some(ready) = routes.iter().find(|r| r.route.inputs.contains(&key.0)) else {
                        tracing::error!(topic = %key.0, "record from a topic no route reads; not stored");
                        continue;
                    };
                    let partition = start_partition(ready, &key, &tables, &sink, &consumer, &handle, &config, &mut tasks)?;
                    partitions.insert(key.clone(), partition);
                }
                if let Some(p) = partitions.get_mut(&key)
                    && p.feed.push(record)
                {
                    source::pause(&consumer, &key.0, key.1);
                }
            }
            _ = tick.tick() => {
                for ((topic, partition), p) in partitions.iter_mut().filter(|(_, p)| p.feed.is_paused()) {
                    if p.feed.drain() {
                        source::resume(&consumer, topic, *partition);
                    }
                }
            }
        }
        for key in consumer.context().take_revoked() {
            if let Some(p) = partitions.remove(&key) {
                p.cancel.cancel();
            }
        }
    }

    // Shutdown: stop taking records, let workers finish their batch and the
    // acknowledgers their deliveries, then commit what is stored.
    tracing::info!(grace = ?config.delivery.shutdown_grace, "shutting down");
    for p in partitions.values() {
        p.cancel.cancel();
    }
    drop(partitions);
    let drained =
        tokio::time::timeout(config.delivery.shutdown_grace, async { while tasks.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        tracing::warn!(
            unfinished = tasks.len(),
            "grace period over; abandoning unacknowledged work (it will be consumed again)"
        );
        tasks.abort_all();
    }
    // The final commit blocks while the broker is unreachable; it gets a
    // bounded wait so that shutdown never hangs on it.
    let committer = consumer.clone();
    let commit = tokio::task::spawn_blocking(move || committer.commit_consumer_state(CommitMode::Sync));
    match tokio::time::timeout(FINAL_COMMIT_WAIT, commit).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::debug!(error = %e, "final commit (nothing stored is fine)"),
        Ok(Err(e)) => tracing::error!(error = %e, "final commit task failed"),
        Err(_) => {
            tracing::warn!(wait = ?FINAL_COMMIT_WAIT, "final commit did not finish; uncommitted records will be consumed again")
        }
    }
    let report = RunReport { committed: source::committed(&consumer) };
    sink.flush(Duration::from_secs(5)).ok();
    consumer.unsubscribe();
    Ok(report)
}

fn prepare_routes(config: &Config, runtime: &Runtime) -> anyhow::Result<Vec<ReadyRoute>> {
    config
        .routes
        .iter()
        .map(|route| {
            let plugins = route
                .chain
                .iter()
                .map(|step| runtime.load(&step.path, &step.budgets).map_err(anyhow::Error::from))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for (step, plugin) in route.chain.iter().zip(&plugins) {
                tracing::info!(route = %route.name, plugin = %plugin.version(), path = %step.path.display(), "plugin loaded");
            }
            let context = Arc::new(RouteContext {
                name: route.name.clone(),
                group: config.broker.group.clone(),
                dlq: route.dlq.clone(),
                retry: route.retry,
                batch_size: config.delivery.batch_size,
            });
            let targets = Arc::new(Targets { outputs: route.outputs.clone(), allow: route.allow.clone() });
            Ok(ReadyRoute { route: route.clone(), plugins, context, targets })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn start_partition(
    ready: &ReadyRoute,
    (topic, partition): &(String, i32),
    tables: &Arc<Tables>,
    sink: &Sink,
    consumer: &Arc<SourceConsumer>,
    handle: &Handle,
    config: &Config,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Partition> {
    let chain =
        ready.chain(tables).with_context(|| format!("route {}: cannot start the plugin chain", ready.route.name))?;
    let cancel = handle.shutdown.child_token();
    let (tx, rx) = mpsc::channel(config.delivery.queue_per_partition);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let store = {
        let consumer = consumer.clone();
        let topic = topic.clone();
        let partition = *partition;
        Box::new(move |next: i64| {
            // `store_offsets` takes the offset to commit (the next to read);
            // the single-offset `store_offset` would add one more.
            let mut tpl = rdkafka::TopicPartitionList::new();
            let stored = tpl
                .add_partition_offset(&topic, partition, rdkafka::Offset::Offset(next))
                .and_then(|()| consumer.store_offsets(&tpl));
            if let Err(e) = stored {
                // After a revoke the partition is someone else's; it will be consumed again there.
                tracing::debug!(%topic, partition, error = %e, "offset not stored");
            }
        })
    };
    tasks.spawn(offsets::acknowledge_in_order(
        ack_rx,
        sink.clone(),
        store,
        handle.stats.clone(),
        ready.route.name.clone(),
    ));
    let worker = Worker {
        chain,
        route: ready.context.clone(),
        sink: sink.clone(),
        acks: ack_tx,
        stats: handle.stats.clone(),
        cancel: cancel.clone(),
    };
    tasks.spawn(worker.run(rx));
    tracing::info!(route = %ready.route.name, %topic, partition, "partition worker started");
    Ok(Partition { feed: Feed::new(tx), cancel })
}
