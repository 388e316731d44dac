//! Measures commit → readable-in-Kafka latency for `scripts/bench-kafka.sh`: consumes TOPIC
//! from its end and, for COUNT change events, compares the time of arrival with the row's
//! `lat_us` column (the writer's clock at insert, µs since the epoch). Prints p50/p99/max.
//!
//!   cargo run --release --example kafka_latency -- BROKERS TOPIC COUNT

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, count] = args.as_slice() else {
        return Err("usage: kafka_latency BROKERS TOPIC COUNT".into());
    };
    let count: usize = count.parse()?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "cdc-latency")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "1")
        .set("fetch.min.bytes", "1")
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let partitions = loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let ids: Vec<i32> = md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
        if !ids.is_empty() {
            break ids;
        }
        if Instant::now() > deadline {
            return Err(format!("topic {topic} never appeared").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::End)?;
    }
    consumer.assign(&tpl)?;
    eprintln!("kafka_latency: ready");
    let mut latencies_us = Vec::with_capacity(count);
    while latencies_us.len() < count {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        let message = message?;
        let arrived = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as i64;
        let Some(payload) = message.payload() else { continue };
        let value: serde_json::Value = serde_json::from_slice(payload)?;
        if let Some(sent) = value["after"]["lat_us"].as_i64() {
            latencies_us.push(arrived - sent);
        }
    }
    latencies_us.sort_unstable();
    let at = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "latency commit→readable over {} changes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies_us.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(())
}
