//! The two brokers every case runs on: Apache Kafka, and librdkafka's mock
//! cluster held by the suite process so that variant processes reach it
//! over its sockets.

use std::time::Duration;

use anyhow::{Context as _, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use sluice::kafka::EmbeddedBroker;

#[derive(Debug)]
pub enum Broker {
    Kafka(String),
    Embedded(EmbeddedBroker),
}

impl Broker {
    pub fn name(&self) -> &'static str {
        match self {
            Broker::Kafka(_) => "kafka",
            Broker::Embedded(_) => "embedded",
        }
    }

    pub fn bootstrap(&self) -> String {
        match self {
            Broker::Kafka(address) => address.clone(),
            Broker::Embedded(broker) => broker.bootstrap(),
        }
    }

    /// The records a case may use: the mock cluster keeps at most 5 MiB
    /// (and 100,000 message sets) per partition and drops the oldest beyond
    /// that (`rdkafka_mock.c`), so a bigger case would never see its
    /// first records. Kafka takes any count.
    pub fn max_records(&self, count: u64, size: usize, partitions: i32) -> u64 {
        match self {
            Broker::Kafka(_) => count,
            Broker::Embedded(_) => {
                let per_partition = 4 * 1024 * 1024 / (size as u64 + 64);
                count.min(per_partition * partitions as u64)
            }
        }
    }

    pub async fn create(&self, topics: &[(String, i32)]) -> anyhow::Result<()> {
        match self {
            Broker::Embedded(broker) => topics.iter().try_for_each(|(t, p)| broker.create_topic(t, *p)),
            Broker::Kafka(address) => {
                let admin = admin(address)?;
                let new: Vec<NewTopic<'_>> =
                    topics.iter().map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1))).collect();
                let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
                for result in admin.create_topics(&new, &options).await.context("create topics")? {
                    if let Err((topic, code)) = result {
                        bail!("cannot create topic {topic}: {code}");
                    }
                }
                Ok(())
            }
        }
    }

    /// Deletes a finished case's topics on Kafka, so that a run does not
    /// leave gigabytes behind. The mock cluster forgets them on exit.
    pub async fn delete(&self, topics: &[String]) -> anyhow::Result<()> {
        if let Broker::Kafka(address) = self {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            admin(address)?.delete_topics(&names, &AdminOptions::new()).await.context("delete topics")?;
        }
        Ok(())
    }
}

fn admin(address: &str) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    ClientConfig::new().set("bootstrap.servers", address).create().context("cannot create the admin client")
}
