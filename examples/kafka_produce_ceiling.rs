//! The broker's ceiling for `scripts/bench-kafka.sh`: one idempotent producer with cdc's
//! default settings sends COUNT messages of SIZE bytes (keys like cdc's) and waits for every
//! delivery report. What cdc's Kafka sink reaches is compared with this.
//!
//!   cargo run --release --example kafka_produce_ceiling -- BROKERS TOPIC COUNT SIZE

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic, count, size] = args.as_slice() else {
        return Err("usage: kafka_produce_ceiling BROKERS TOPIC COUNT SIZE".into());
    };
    let (count, size): (usize, usize) = (count.parse()?, size.parse()?);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "32768")
        .create()?;
    let start = Instant::now();
    for i in 0..count {
        let key = format!("{{\"id\":{i}}}");
        // Envelope-like JSON with per-message numbers, padded to SIZE.
        let mut payload = format!(
            "{{\"before\":null,\"after\":{{\"id\":{i},\"a\":{},\"b\":{},\"c\":\"name-{i}\",\"e\":{}}},\"source\":{{\"pos\":{}}},\"op\":\"c\"",
            i % 100_000,
            i * 7,
            i as f64 * 1.5,
            i * 211
        );
        while payload.len() + 1 < size {
            payload.push_str(",\"t\":\"tttttttttttttttttttttttttttttt\"");
        }
        payload.truncate(size.saturating_sub(1));
        payload.push('}');
        loop {
            match producer.send(BaseRecord::<_, _>::to(topic).key(&key).payload(&payload)) {
                Ok(()) => break,
                Err((_, _)) => producer.poll(Duration::from_millis(1)),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120))?;
    let secs = start.elapsed().as_secs_f64();
    println!("producer ceiling: {count} messages of {size} bytes in {secs:.2} s = {:.0} msg/s", count as f64 / secs);
    Ok(())
}
