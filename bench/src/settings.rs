//! What the suite runs, from environment variables, so that a quick run and
//! the full one are the same command.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: String,
    /// `kafka`, `embedded`, or both.
    pub brokers: Vec<String>,
    /// (value size in bytes, records) per synthetic case.
    pub sizes: Vec<(usize, u64)>,
    pub partitions: Vec<i32>,
    /// Olist events for H2 (the slice cycled); 0 skips H2.
    pub olist_events: u64,
    /// Offered loads for the latency runs, as % of B0's maximum.
    pub latency_loads: Vec<u32>,
    pub latency_warmup: Duration,
    pub latency_measure: Duration,
    pub reloads: u32,
    /// A Python with confluent-kafka, for the peer; none skips it.
    pub python: Option<PathBuf>,
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn list<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    var(name, default)
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<T>().with_context(|| format!("{name}: {s:?} is not a valid entry")))
        .collect()
}

fn number<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text = var(name, default);
    text.trim().parse::<T>().with_context(|| format!("{name}: {text:?} is not a number"))
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let sizes = var("SLUICE_BENCH_SIZES", "100:200000,1024:100000,4096:40000")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| {
                let (size, count) = entry
                    .split_once(':')
                    .with_context(|| format!("SLUICE_BENCH_SIZES: {entry:?} is not SIZE:RECORDS"))?;
                Ok((size.parse()?, count.parse()?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Settings {
            kafka: var("SLUICE_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            brokers: list("SLUICE_BENCH_BROKERS", "kafka,embedded")?,
            sizes,
            partitions: list("SLUICE_BENCH_PARTITIONS", "1,4")?,
            olist_events: number("SLUICE_BENCH_OLIST_EVENTS", "60000")?,
            latency_loads: list("SLUICE_BENCH_LATENCY_LOADS", "25,50,75")?,
            latency_warmup: Duration::from_secs_f64(number("SLUICE_BENCH_LATENCY_WARMUP", "2")?),
            latency_measure: Duration::from_secs_f64(number("SLUICE_BENCH_LATENCY_SECS", "4")?),
            reloads: number("SLUICE_BENCH_RELOADS", "5")?,
            python: std::env::var_os("SLUICE_BENCH_PYTHON").map(PathBuf::from),
        })
    }
}
