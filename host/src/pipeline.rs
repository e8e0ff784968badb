//! `sluice run`: wires config, plugins, consumer, workers and producer
//! together, and shuts them down in order.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureProducer;
use tokio::sync::{mpsc, watch as channel};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::config::{Bootstrap, Config, LoadOptions};
use crate::control::Shared;
use crate::kafka::{self, EmbeddedBroker};
use crate::offsets;
use crate::partition::Worker;
use crate::registry::Registry;
use crate::reload::{Change, Controller};
use crate::route_version::RouteVersion;
use crate::runtime::Runtime;
use crate::sink::Sink;
use crate::source::{self, Feed, SourceConsumer, SourceContext};
use crate::stats::{PartitionLive, Stats};
use crate::watch;

/// librdkafka's statistics period; the operator may set it in `[broker.consumer]`.
const STATISTICS_INTERVAL: &str = "statistics.interval.ms";

/// How long shutdown waits for the final synchronous commit.
const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(10);

/// A running partition: the feed to its worker and the tasks to stop.
struct Partition {
    feed: Feed,
    cancel: CancellationToken,
    live: Arc<PartitionLive>,
}

/// Handles to a running pipeline, for the demo and tests.
#[derive(Clone, Debug)]
pub struct Handle {
    pub stats: Arc<Stats>,
    pub shutdown: CancellationToken,
    /// How the config was loaded, so that a reload loads it the same way.
    pub options: LoadOptions,
    /// The admin server's address once it listens.
    pub admin: Arc<OnceLock<std::net::SocketAddr>>,
    /// What the admin server sees, once the pipeline has started.
    pub control: Arc<OnceLock<Arc<Shared>>>,
}

impl Handle {
    pub fn new(options: LoadOptions) -> Self {
        Handle {
            stats: Arc::default(),
            shutdown: CancellationToken::new(),
            options,
            admin: Arc::default(),
            control: Arc::default(),
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
    let registry = Registry::new(Runtime::new()?);

    let producer_props = config.producer_properties();
    let producer: FutureProducer =
        kafka::producer_config(&bootstrap, &producer_props).create().context("cannot create the producer")?;
    let sink = Sink::new(producer);

    let consumer_props = config.consumer_properties();
    let mut consumer_config = kafka::consumer_config(&bootstrap, &config.broker.group, &consumer_props);
    if !consumer_props.contains_key(STATISTICS_INTERVAL) {
        // Lag and watermarks for /status and /metrics come from these reports.
        consumer_config.set(STATISTICS_INTERVAL, "1000");
    }
    let context = SourceContext::new(handle.stats.clone());
    let consumer: Arc<SourceConsumer> =
        Arc::new(consumer_config.create_with_context(context).context("cannot create the consumer")?);

    // Everything below the controller (admin, watcher, SIGHUP) stops with it.
    let services = handle.shutdown.child_token();
    let (request_tx, request_rx) = mpsc::channel(16);
    let shared = Arc::new(Shared::new(handle.stats.clone(), request_tx));
    let controller =
        Controller::start(config.clone(), handle.options.clone(), registry, consumer.clone(), shared.clone())?;
    let routes = controller.topics();
    let _ = handle.control.set(shared.clone());
    if let Some(address) = config.admin {
        let listener = admin::bind(address).await?;
        let bound = listener.local_addr().context("admin server address")?;
        let _ = handle.admin.set(bound);
        tracing::info!(address = %format!("http://{bound}"), "admin server listening");
        tokio::spawn(admin::serve(listener, shared.clone(), services.clone()));
    }
    let (change_tx, change_rx) = mpsc::channel(64);
    let _watch = if config.reload.watch {
        Some(watch::start(&config.plugin_dir, &config.path, config.reload.debounce, change_tx.clone())?)
    } else {
        None
    };
    spawn_sighup(change_tx, services.clone());
    tokio::spawn(controller.run(change_rx, request_rx, services.clone()));

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
                    let versions = routes.read().unwrap_or_else(|e| e.into_inner()).get(&key.0).cloned();
                    let Some(versions) = versions else {
                        // Its route was removed by a reload; the partition is being revoked.
                        tracing::debug!(topic = %key.0, "record from a topic no route reads; not stored");
                        continue;
                    };
                    let partition = start_partition(versions, &key, &sink, &consumer, &handle, &config, &mut tasks).await?;
                    partitions.insert(key.clone(), partition);
                }
                if let Some(p) = partitions.get_mut(&key) {
                    p.live.received();
                    if p.feed.push(record) {
                        source::pause(&consumer, &key.0, key.1);
                    }
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
    services.cancel();
    let report = RunReport { committed: source::committed(&consumer) };
    sink.flush(Duration::from_secs(5)).ok();
    consumer.unsubscribe();
    Ok(report)
}

/// SIGHUP reloads the config, as is usual for daemons.
fn spawn_sighup(changes: mpsc::Sender<Change>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hup) => hup,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by editing the config file instead");
                return;
            }
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                Some(()) = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    if changes.send(Change::ConfigSignal).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

async fn start_partition(
    mut versions: channel::Receiver<Arc<RouteVersion>>,
    (topic, partition): &(String, i32),
    sink: &Sink,
    consumer: &Arc<SourceConsumer>,
    handle: &Handle,
    config: &Config,
    tasks: &mut JoinSet<()>,
) -> anyhow::Result<Partition> {
    let version = versions.borrow_and_update().clone();
    let route = version.context.clone();
    let chain = tokio::task::spawn_blocking(move || version.chain())
        .await
        .context("starting a plugin chain panicked")?
        .with_context(|| format!("route {}: cannot start the plugin chain", route.name))?;
    let cancel = handle.shutdown.child_token();
    let (tx, rx) = mpsc::channel(config.delivery.queue_per_partition);
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let live = handle.stats.partitions.started(topic, *partition, &route.name);
    let store = {
        let consumer = consumer.clone();
        let topic = topic.clone();
        let partition = *partition;
        let live = live.clone();
        Box::new(move |next: i64| {
            live.completed(next);
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
    tasks.spawn(offsets::acknowledge_in_order(ack_rx, sink.clone(), store, handle.stats.clone(), route.name.clone()));
    let chain_lineage = chain.lineage.clone();
    let worker = Worker {
        chain,
        route: route.clone(),
        versions: Some(versions),
        sink: sink.clone(),
        acks: ack_tx,
        stats: handle.stats.clone(),
        cancel: cancel.clone(),
    };
    tasks.spawn(worker.run(rx));
    handle.stats.partition_started(&route.name);
    tracing::info!(route = %route.name, %topic, partition, chain = %chain_lineage, "partition worker started");
    Ok(Partition { feed: Feed::new(tx, config.delivery.queue_bytes_per_partition), cancel, live })
}
