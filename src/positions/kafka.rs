//! Positions kept in a compacted Kafka topic, keyed by the pipeline name, so that a sidecar
//! without a persistent disk can resume. In exactly-once mode the Kafka sink writes the records
//! itself, inside the transaction that carries the data; the store then only reads.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::{PositionRecord, PositionStore, needs_write};
use crate::config::KafkaSinkConfig;
use crate::error::CdcError;
use crate::model::Position;
use crate::sinks::kafka::client::{self, KafkaContext};

pub struct KafkaPositionStore {
    kafka: KafkaSinkConfig,
    topic: String,
    name: String,
    /// Exactly-once: the sink commits each position with its data; `save` only remembers it.
    written_by_sink: bool,
    producer: FutureProducer<KafkaContext>,
    admin: Arc<client::Admin>,
    last: Mutex<Option<Position>>,
}

impl KafkaPositionStore {
    pub fn new(kafka: &KafkaSinkConfig, topic: &str, name: &str) -> Result<KafkaPositionStore, CdcError> {
        let bad = |e: KafkaError| {
            CdcError::definite(format!("Kafka client rejected the settings: {e}"), "fix sink.properties")
        };
        let mut producer_config = client::producer_config(kafka);
        producer_config.set("linger.ms", "0");
        // Non-transactional even when sink.properties names a transactional.id.
        producer_config.remove("transactional.id");
        let context = KafkaContext::default();
        Ok(KafkaPositionStore {
            kafka: kafka.clone(),
            topic: topic.to_string(),
            name: name.to_string(),
            written_by_sink: kafka.exactly_once,
            admin: Arc::new(client::admin(kafka, &context).map_err(bad)?),
            producer: producer_config.create_with_context(context).map_err(bad)?,
            last: Mutex::new(None),
        })
    }

    fn remember(&self, position: &Position) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(position.clone());
    }

    async fn write(&self, position: &Position) -> Result<(), CdcError> {
        let record = PositionRecord::encode(&self.name, position);
        let message = FutureRecord::to(&self.topic).key(self.name.as_bytes()).payload(&record);
        self.producer.send(message, Duration::from_secs(30)).await.map_err(|(e, _)| {
            CdcError::transient(format!("cannot write the position to Kafka topic `{}`: {e}", self.topic))
        })?;
        Ok(())
    }

    /// Reads the topic to its end (the last stable offset: `read_committed`) and returns
    /// the newest record for this pipeline.
    fn read_newest(kafka: &KafkaSinkConfig, topic: &str, name: &str) -> Result<Option<Position>, CdcError> {
        let unreachable =
            |e: KafkaError| CdcError::transient(format!("cannot read positions from Kafka topic `{topic}`: {e}"));
        let mut config = client::base_config(kafka);
        config
            .set("group.id", format!("cdc-positions-{name}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let consumer: BaseConsumer = config.create().map_err(unreachable)?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30)).map_err(unreachable)?;
        let mut ends = Vec::new();
        let mut assignment = TopicPartitionList::new();
        for p in metadata.topics().iter().filter(|t| t.name() == topic).flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(30)).map_err(unreachable)?;
            if high > low {
                ends.push((p.id(), high));
                assignment.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(unreachable)?;
            }
        }
        if ends.is_empty() {
            return Ok(None);
        }
        consumer.assign(&assignment).map_err(unreachable)?;
        let mut newest: Option<(i64, Option<Position>)> = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        // Done when the consumer's position passed each partition's end as it was at the start
        // (positions also move past transaction markers, which are never returned as messages).
        let at_end = |consumer: &BaseConsumer| {
            consumer.position().is_ok_and(|tpl| {
                ends.iter().all(|&(p, high)| {
                    matches!(tpl.find_partition(topic, p).map(|e| e.offset()), Some(Offset::Offset(o)) if o >= high)
                })
            })
        };
        while !at_end(&consumer) {
            if Instant::now() > deadline {
                return Err(CdcError::transient(format!("timed out reading positions from Kafka topic `{topic}`")));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => return Err(unreachable(e)),
                Some(Ok(m)) => {
                    if m.key() != Some(name.as_bytes()) {
                        continue;
                    }
                    let position = match m.payload() {
                        None => None,
                        Some(bytes) => Some(
                            PositionRecord::decode(bytes, &format!("record at offset {} of `{topic}`", m.offset()))?
                                .position,
                        ),
                    };
                    // Records of one key share a partition: offsets order them.
                    if newest.as_ref().is_none_or(|(o, _)| m.offset() > *o) {
                        newest = Some((m.offset(), position));
                    }
                }
            }
        }
        Ok(newest.and_then(|(_, p)| p))
    }
}

#[async_trait]
impl PositionStore for KafkaPositionStore {
    async fn load(&self) -> Result<Option<Position>, CdcError> {
        client::ensure_topic(
            &self.admin,
            &self.topic,
            1,
            self.kafka.replication_factor,
            &[("cleanup.policy", "compact")],
        )
        .await?;
        let (kafka, topic, name) = (self.kafka.clone(), self.topic.clone(), self.name.clone());
        let found = tokio::task::spawn_blocking(move || Self::read_newest(&kafka, &topic, &name))
            .await
            .map_err(|e| CdcError::definite(format!("position read task failed: {e}"), "report this as a bug"))??;
        if let Some(p) = &found {
            self.remember(p);
        }
        Ok(found)
    }

    async fn save(&self, position: &Position) -> Result<bool, CdcError> {
        let stored = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let remedy = || {
            format!(
                "topic `{}` holds a position of another source for `{}`; set positions.topic or reset with --from",
                self.topic, self.name
            )
        };
        if let Some(written) = needs_write(stored.as_ref(), position, remedy)? {
            return Ok(written);
        }
        if !self.written_by_sink {
            self.write(position).await?;
        }
        self.remember(position);
        Ok(true)
    }

    async fn reset(&self, position: &Position) -> Result<(), CdcError> {
        self.write(position).await?;
        self.remember(position);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("Kafka topic {} (key {})", self.topic, self.name)
    }
}
