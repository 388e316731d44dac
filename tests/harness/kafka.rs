//! Reading back what cdc wrote to Kafka, with a real consumer (librdkafka through `rdkafka`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value as Json;

#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Json>,
    /// `None` for a tombstone.
    pub value: Option<Json>,
    pub headers: BTreeMap<String, String>,
    /// The bytes as they arrived (`key`/`value` hold them parsed as JSON, or as text).
    pub raw_key: Option<Vec<u8>>,
    pub raw_value: Option<Vec<u8>>,
}

impl Record {
    pub fn op(&self) -> Option<&str> {
        self.value.as_ref().and_then(|v| v["op"].as_str())
    }
}

/// Reads every partition of `topic` from the beginning until `want` records arrived and no
/// more came for `settle` (so duplicates would show), or panics after 90 s.
pub fn read_topic(bootstrap: &str, topic: &str, want: usize, read_committed: bool, settle: Duration) -> Vec<Record> {
    read_topic_until(bootstrap, topic, read_committed, settle, |got| got.len() >= want)
}

/// Reads `topic` from the beginning until `done(records so far)` holds and no more records
/// came for `settle`, or panics after 90 s.
pub fn read_topic_until(
    bootstrap: &str,
    topic: &str,
    read_committed: bool,
    settle: Duration,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    read(bootstrap, topic, read_committed, settle, |records, _| done(records))
}

/// Reads every record `topic` holds now: up to the end offsets taken when reading starts.
pub fn read_to_end(bootstrap: &str, topic: &str, read_committed: bool) -> Vec<Record> {
    read(bootstrap, topic, read_committed, Duration::ZERO, |_, at_end| at_end)
}

/// `done(records, at_end)`: `at_end` once the consumer passed the end offsets of the start.
fn read(
    bootstrap: &str,
    topic: &str,
    read_committed: bool,
    settle: Duration,
    done: impl Fn(&[Record], bool) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "cdc-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", if read_committed { "read_committed" } else { "read_uncommitted" })
        .create()
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(90);
    let partitions = loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        let ids: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !ids.is_empty() {
            break ids;
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
        ends.push((p, consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks").1));
    }
    consumer.assign(&tpl).unwrap();
    // Positions move past transaction markers too, which are never returned as messages.
    let at_end = |consumer: &BaseConsumer| {
        consumer.position().is_ok_and(|tpl| {
            ends.iter().all(|&(p, high)| match tpl.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o >= high,
                _ => high == 0,
            })
        })
    };
    let mut out = Vec::new();
    let mut last_new = Instant::now();
    loop {
        if last_new.elapsed() >= settle && done(&out, at_end(&consumer)) {
            return out;
        }
        assert!(Instant::now() < deadline, "not done after 90 s with {} records in {topic}", out.len());
        let Some(m) = consumer.poll(Duration::from_millis(100)) else { continue };
        let m = m.expect("consume");
        // JSON where it is JSON; other bytes (the position topic's keys) as a string.
        let json = |b: Option<&[u8]>| {
            b.map(|b| serde_json::from_slice(b).unwrap_or_else(|_| Json::String(String::from_utf8_lossy(b).into())))
        };
        let mut headers = BTreeMap::new();
        if let Some(h) = m.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_string(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push(Record {
            partition: m.partition(),
            offset: m.offset(),
            key: json(m.key()),
            value: json(m.payload()),
            headers,
            raw_key: m.key().map(<[u8]>::to_vec),
            raw_value: m.payload().map(<[u8]>::to_vec),
        });
        last_new = Instant::now();
    }
}
