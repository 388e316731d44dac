//! Kafka sink: one message per change, with Debezium's topic names, keys, envelopes and
//! tombstones, so that consumers written for Debezium read it unchanged.
//!
//! At-least-once (default): a batch is acknowledged when the broker has acknowledged
//! (`acks=all`, idempotent producer) every message of it; the delivery reports drive the acks.
//! Exactly-once (`exactly_once = true`): messages go out in Kafka transactions; each
//! transaction ends on a source checkpoint and carries the position record for it, so the
//! data and the resume point become visible to `read_committed` consumers together.

pub mod client;
pub mod registry;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rustc_hash::{FxHashMap, FxHashSet};

use self::client::{KafkaContext, PendingBatch};
use self::registry::AvroRecords;
use crate::config::{KafkaFormat, KafkaSinkConfig};
use crate::error::CdcError;
use crate::format::connect::JsonSchemas;
use crate::format::debezium::{
    EnvelopeContext, write_envelope_in_tx, write_key, write_transaction_key, write_transaction_record,
};
use crate::model::{Batch, ChangeEvent, Lsn, Op, Position, SourceMeta, TableId, TxInfo, now_ms, now_us};
use crate::pipeline::{Ack, Sink};
use crate::positions::PositionRecord;

/// How topics are named and created.
struct Topics {
    prefix: String,
    single: Option<String>,
    per_table: FxHashMap<String, String>,
    create: bool,
    partitions: i32,
    replication_factor: i32,
}

impl Topics {
    fn name_for(&self, table: &TableId) -> String {
        let qualified = format!("{}.{}", table.namespace, table.name);
        if let Some(t) = self.per_table.get(&qualified) {
            return t.clone();
        }
        if let Some(t) = &self.single {
            return t.clone();
        }
        client::sanitize_topic(&format!("{}.{qualified}", self.prefix))
    }
}

/// Exactly-once state: the open Kafka transaction and the batches it holds.
struct Transactions {
    positions_topic: String,
    /// Batches in the open transaction, acknowledged when it commits.
    open: Option<Vec<Ack>>,
    /// Process-unique prefix and counter of the `cdc.kafka_txn` header.
    run: i64,
    count: u64,
    /// `cdc.kafka_txn` of the open transaction: on every message of it and on its position
    /// record, so an audit can tell which messages a commit covered (even on a broker that
    /// serves aborted records to `read_committed` consumers).
    label: String,
    /// `transaction.timeout.ms`: after it the broker aborts an uncommitted transaction.
    timeout: Duration,
}

/// Transaction metadata (Debezium's `provide.transaction.metadata`): BEGIN/END records on
/// `<prefix>.transaction` and the `transaction` block in each event.
struct TxMetadata {
    topic: Arc<str>,
    open: Option<OpenTx>,
}

/// The source transaction being delivered: its id and event counts so far.
struct OpenTx {
    id: String,
    total: u64,
    per_table: Vec<(String, u64)>,
}

pub struct KafkaSink {
    producer: ThreadedProducer<KafkaContext>,
    admin: Arc<client::Admin>,
    topics: Topics,
    tombstones: bool,
    /// Topic of each table seen (and its partition when ordered by table), and the topics
    /// known to exist.
    routes: FxHashMap<TableId, (Arc<str>, Option<i32>)>,
    order_by_table: bool,
    ready: FxHashSet<Arc<str>>,
    envelope: EnvelopeContext,
    key: Vec<u8>,
    value: Vec<u8>,
    header: String,
    tx_id: String,
    transactions: Option<Transactions>,
    tx_metadata: Option<TxMetadata>,
    /// Kafka Connect schemas with each record (`json_schemas`).
    json_schemas: Option<JsonSchemas>,
    /// Avro with schemas in a registry (`format = "avro"`).
    avro: Option<AvroRecords>,
}

impl KafkaSink {
    /// `positions_topic` is where the exactly-once mode writes its position records.
    pub fn new(name: &str, kafka: &KafkaSinkConfig, positions_topic: &str) -> Result<KafkaSink, CdcError> {
        let bad_property = |e: KafkaError| {
            CdcError::definite(format!("Kafka client rejected the settings: {e}"), "fix sink.properties")
        };
        let mut producer_config = client::producer_config(kafka);
        if kafka.exactly_once {
            let id = kafka.transactional_id.clone().unwrap_or_else(|| format!("cdc-{name}"));
            producer_config.set("transactional.id", id);
        }
        let producer = ThreadedProducer::from_config_and_context(&producer_config, KafkaContext::default())
            .map_err(bad_property)?;
        let admin = client::admin(kafka, producer.context()).map_err(bad_property)?;
        let topics = Topics {
            prefix: kafka.topic_prefix.clone().unwrap_or_else(|| name.to_string()),
            single: kafka.topic.clone(),
            per_table: kafka.topics.clone().into_iter().collect(),
            create: kafka.create_topics,
            partitions: kafka.partitions,
            replication_factor: kafka.replication_factor,
        };
        let tx_metadata = kafka.transaction_metadata.then(|| TxMetadata {
            topic: Arc::from(client::sanitize_topic(&format!("{}.transaction", topics.prefix))),
            open: None,
        });
        let json_schemas = kafka.json_schemas.then(|| JsonSchemas::new(&topics.prefix));
        let avro = match (kafka.format, &kafka.schema_registry) {
            (KafkaFormat::Avro, Some(registry)) => Some(AvroRecords::new(registry, &topics.prefix)?),
            (KafkaFormat::Avro, None) => {
                return Err(CdcError::definite(
                    "format = \"avro\" without a schema registry",
                    "set sink.schema_registry.url",
                ));
            }
            (KafkaFormat::Json, _) => None,
        };
        Ok(KafkaSink {
            avro,
            tx_metadata,
            json_schemas,
            producer,
            admin: Arc::new(admin),
            topics,
            tombstones: kafka.tombstones_on_delete,
            routes: FxHashMap::default(),
            order_by_table: kafka.order_by == crate::config::OrderBy::Table,
            ready: FxHashSet::default(),
            envelope: EnvelopeContext { name: name.to_string(), now_us: 0 },
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
            header: String::with_capacity(128),
            tx_id: String::with_capacity(64),
            transactions: kafka.exactly_once.then(|| Transactions {
                positions_topic: positions_topic.to_string(),
                open: None,
                run: now_us(),
                count: 0,
                label: String::new(),
                timeout: producer_config
                    .get("transaction.timeout.ms")
                    .and_then(|ms| ms.parse().ok())
                    .map_or(Duration::from_secs(60), Duration::from_millis),
            }),
        })
    }

    fn check_failure(&self) -> Result<(), CdcError> {
        match self.producer.context().failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Routes every table of the batch to its topic and makes sure the topics exist, before
    /// anything of the batch is produced (so a retry of the batch starts clean).
    async fn prepare_topics(&mut self, batch: &Batch) -> Result<(), CdcError> {
        if let Some(meta) = &self.tx_metadata
            && !self.ready.contains(&meta.topic)
        {
            let topic = meta.topic.clone();
            self.ensure_topic(&topic).await?;
            if let Some(avro) = &mut self.avro {
                avro.prepare_transaction(&topic).await?;
            }
            self.ready.insert(topic);
        }
        for event in &batch.events {
            if self.routes.contains_key(&event.table.id) {
                continue;
            }
            let topic = self.topics.name_for(&event.table.id);
            let name: Arc<str> = self.ready.get(topic.as_str()).cloned().unwrap_or_else(|| Arc::from(topic));
            if !self.ready.contains(&name) {
                self.ensure_topic(&name).await?;
                self.ready.insert(name.clone());
            }
            let partition = if self.order_by_table {
                let qualified = format!("{}.{}", event.table.id.namespace, event.table.id.name);
                let count = client::partition_count(&self.admin, &name).await?;
                Some(client::murmur2_partition(qualified.as_bytes(), count))
            } else {
                None
            };
            self.routes.insert(event.table.id.clone(), (name, partition));
        }
        // Registering before anything of the batch is produced keeps a registry outage from
        // interrupting a batch half-way.
        if let Some(avro) = &mut self.avro {
            for event in &batch.events {
                if let Some((topic, _)) = self.routes.get(&event.table.id) {
                    avro.prepare(event, topic).await?;
                }
            }
        }
        Ok(())
    }

    async fn ensure_topic(&self, topic: &str) -> Result<(), CdcError> {
        if self.topics.create {
            client::ensure_topic(&self.admin, topic, self.topics.partitions, self.topics.replication_factor, &[]).await
        } else if client::topic_exists(&self.admin, topic).await? {
            Ok(())
        } else {
            Err(CdcError::definite(
                format!("Kafka topic `{topic}` does not exist and sink.create_topics = false"),
                "create the topic, or set sink.create_topics = true",
            ))
        }
    }

    /// Produces the messages of one change: the event, and after a delete its tombstone. An
    /// update that changes the key becomes a delete of the old key (and its tombstone) and a
    /// create of the new one, as Debezium does, so compaction keeps only the new key.
    async fn produce_event(
        &mut self,
        event: &ChangeEvent,
        tx: Option<&TxInfo>,
        pending: &Arc<PendingBatch>,
    ) -> Result<(), CdcError> {
        let Some((topic, partition)) = self.routes.get(&event.table.id).cloned() else {
            return Err(CdcError::definite("event for a table without a topic", "report this as a bug"));
        };
        self.header.clear();
        write_position_header(&mut self.header, &event.source.meta);
        if event.op == Op::Update && key_changed(event) {
            let delete = ChangeEvent { op: Op::Delete, after: None, ..event.clone() };
            let create = ChangeEvent { op: Op::Create, before: None, ..event.clone() };
            let (mut old_key, mut new_key) = (Vec::new(), Vec::new());
            write_key(&mut old_key, &delete);
            write_key(&mut new_key, &create);
            let (delete_header, create_header) =
                (("__debezium.newkey", &new_key[..]), ("__debezium.oldkey", &old_key[..]));
            self.produce_one((&topic, partition), &delete, tx, Some(delete_header), pending).await?;
            return self.produce_one((&topic, partition), &create, tx, Some(create_header), pending).await;
        }
        self.produce_one((&topic, partition), event, tx, None, pending).await
    }

    /// `to`: the topic, and the partition when ordered by table (else the key decides).
    async fn produce_one(
        &mut self,
        to: (&str, Option<i32>),
        event: &ChangeEvent,
        tx: Option<&TxInfo>,
        extra_header: Option<(&str, &[u8])>,
        pending: &Arc<PendingBatch>,
    ) -> Result<(), CdcError> {
        let keyed = !event.table.key.is_empty() && event.key_row().is_some();
        self.key.clear();
        self.value.clear();
        let tx = tx.or(event.transaction.as_ref());
        if let Some(avro) = &mut self.avro {
            avro.prepare(event, to.0).await?;
            if keyed {
                avro.write_key(&mut self.key, event, |out| write_key(out, event))?;
            }
            avro.write_value(&mut self.value, event, |out| write_envelope_in_tx(out, event, &self.envelope, tx))?;
        } else if let Some(schemas) = &mut self.json_schemas {
            if keyed {
                schemas.write_key(&mut self.key, event, |out| write_key(out, event));
            }
            schemas.write_value(&mut self.value, event, |out| write_envelope_in_tx(out, event, &self.envelope, tx));
        } else {
            if keyed {
                write_key(&mut self.key, event);
            }
            write_envelope_in_tx(&mut self.value, event, &self.envelope, tx);
        }
        self.tx_id.clear();
        let has_tx_id = write_tx_id(&mut self.tx_id, &event.source.meta);
        let kafka_txn = self.transactions.as_ref().map(|t| t.label.as_bytes());
        let headers = || {
            let mut h = OwnedHeaders::new_with_capacity(4)
                .insert(Header { key: "cdc.position", value: Some(self.header.as_bytes()) });
            if has_tx_id {
                h = h.insert(Header { key: "cdc.tx_id", value: Some(self.tx_id.as_bytes()) });
            }
            if let Some(label) = kafka_txn {
                h = h.insert(Header { key: "cdc.kafka_txn", value: Some(label) });
            }
            if let Some((key, value)) = extra_header {
                h = h.insert(Header { key, value: Some(value) });
            }
            h
        };
        let key = keyed.then_some(self.key.as_slice());
        send(&self.producer, to, key, Some(&self.value), &headers, pending, event).await?;
        if event.op == Op::Delete && self.tombstones && keyed {
            send(&self.producer, to, key, None, &headers, pending, event).await?;
        }
        Ok(())
    }

    /// Writes the position record into the open transaction and commits it.
    async fn commit(&mut self, checkpoint: &Position) -> Result<(), CdcError> {
        let Some(tx) = &mut self.transactions else { return Ok(()) };
        let record = PositionRecord::encode(&self.envelope.name, checkpoint);
        let topic = tx.positions_topic.clone();
        let name = self.envelope.name.clone();
        let label = tx.label.clone();
        let headers = || OwnedHeaders::new().insert(Header { key: "cdc.kafka_txn", value: Some(label.as_bytes()) });
        send_raw(
            &self.producer,
            (&topic, None),
            Some(name.as_bytes()),
            Some(&record),
            &headers,
            &PendingBatch::untracked(),
            || format!("position record for {name}"),
        )
        .await?;
        let committed = self.commit_waiting().await;
        let acks = self.transactions.as_mut().and_then(|t| t.open.take()).unwrap_or_default();
        committed?;
        acks.into_iter().for_each(Ack::done);
        Ok(())
    }

    /// Commits the open transaction, waiting (and saying so) while the broker does not answer.
    /// A commit still pending after `transaction.timeout.ms` while the cluster answers is not an
    /// outage: the broker has given up on this producer (a broker that drops a fenced
    /// producer's connection instead of answering PRODUCER_FENCED looks exactly like this).
    async fn commit_waiting(&self) -> Result<(), CdcError> {
        let started = Instant::now();
        let timeout = self.transactions.as_ref().map_or(Duration::from_secs(60), |t| t.timeout);
        loop {
            let producer = self.producer.clone();
            let result = tokio::task::spawn_blocking(move || producer.commit_transaction(Duration::from_secs(10)))
                .await
                .unwrap_or_else(|e| {
                    Err(KafkaError::Canceled).inspect_err(|_| tracing::error!(error = %e, "commit task"))
                });
            let e = match result {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_retriable() && self.producer.context().failure().is_none() => e,
                Err(e) => {
                    self.check_failure()?;
                    return Err(CdcError::definite(
                        format!("Kafka transaction commit failed: {e}"),
                        "restart cdc: the transaction was not committed and is replayed from the last committed position",
                    ));
                }
            };
            let waiting = started.elapsed();
            if waiting >= timeout && client::cluster_answers(&self.admin).await {
                return Err(CdcError::definite(
                    format!(
                        "Kafka answers but has not committed the transaction for {} s (transaction.timeout.ms): \
                         the broker no longer accepts this producer",
                        waiting.as_secs()
                    ),
                    "most likely another cdc instance with the same transactional id took over; if none did, \
                     restart cdc: it resumes from the last committed position",
                ));
            }
            tracing::warn!(waiting_s = waiting.as_secs(), error = %e, "Waiting for Kafka to commit the transaction");
        }
    }

    /// Produces every change of the batch (with transaction metadata when asked for); returns
    /// the bytes of keys and values.
    async fn produce_batch(&mut self, batch: &Batch, pending: &Arc<PendingBatch>) -> Result<u64, CdcError> {
        let mut bytes = 0u64;
        for event in &batch.events {
            let tx = self.next_in_transaction(event, pending).await?;
            self.produce_event(event, tx.as_ref(), pending).await?;
            bytes += (self.key.len() + self.value.len()) as u64;
        }
        if batch.checkpoint.is_some() {
            // A checkpoint ends its batch on a transaction boundary: the open one is complete.
            self.end_transaction(pending).await?;
        }
        Ok(bytes)
    }

    /// Numbers `event` in its source transaction, writing BEGIN (and END of the previous
    /// transaction) when it starts one. `None` without transaction metadata or id.
    async fn next_in_transaction(
        &mut self,
        event: &ChangeEvent,
        pending: &Arc<PendingBatch>,
    ) -> Result<Option<TxInfo>, CdcError> {
        if self.tx_metadata.is_none() {
            return Ok(None);
        }
        let mut id = String::new();
        if !write_tx_id(&mut id, &event.source.meta) {
            return Ok(None);
        }
        let same = self.tx_metadata.as_ref().and_then(|m| m.open.as_ref()).is_some_and(|o| o.id == id);
        if !same {
            self.end_transaction(pending).await?;
            self.transaction_record(&id, None, pending).await?;
            if let Some(meta) = &mut self.tx_metadata {
                meta.open = Some(OpenTx { id: id.clone(), total: 0, per_table: Vec::new() });
            }
        }
        let Some(open) = self.tx_metadata.as_mut().and_then(|m| m.open.as_mut()) else { return Ok(None) };
        let table = format!("{}.{}", event.table.id.namespace, event.table.id.name);
        open.total += 1;
        let in_table = match open.per_table.iter_mut().find(|(t, _)| *t == table) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                open.per_table.push((table, 1));
                1
            }
        };
        Ok(Some(TxInfo { id, total_order: open.total, data_collection_order: in_table }))
    }

    /// Writes END for the open source transaction, if any.
    async fn end_transaction(&mut self, pending: &Arc<PendingBatch>) -> Result<(), CdcError> {
        let Some(open) = self.tx_metadata.as_mut().and_then(|m| m.open.take()) else { return Ok(()) };
        self.transaction_record(&open.id, Some((open.total, &open.per_table)), pending).await
    }

    async fn transaction_record(
        &mut self,
        id: &str,
        end: Option<(u64, &[(String, u64)])>,
        pending: &Arc<PendingBatch>,
    ) -> Result<(), CdcError> {
        let Some(meta) = &self.tx_metadata else { return Ok(()) };
        let topic = meta.topic.clone();
        let (mut key, mut value) = (Vec::with_capacity(64), Vec::with_capacity(256));
        let ts_ms = now_ms();
        if let Some(avro) = &mut self.avro {
            avro.prepare_transaction(&topic).await?;
            avro.write_transaction(&mut key, true, |out| write_transaction_key(out, id))?;
            avro.write_transaction(&mut value, false, |out| write_transaction_record(out, id, end, ts_ms))?;
        } else if let Some(schemas) = &self.json_schemas {
            schemas.write_transaction(&mut key, true, |out| write_transaction_key(out, id));
            schemas.write_transaction(&mut value, false, |out| write_transaction_record(out, id, end, ts_ms));
        } else {
            write_transaction_key(&mut key, id);
            write_transaction_record(&mut value, id, end, ts_ms);
        }
        let no_headers = || OwnedHeaders::new();
        send_raw(&self.producer, (&topic, None), Some(&key), Some(&value), &no_headers, pending, || {
            format!("transaction record for {id}")
        })
        .await
    }

    async fn wait_delivered(&self) -> Result<(), CdcError> {
        let mut last_log = Instant::now();
        loop {
            self.check_failure()?;
            let in_flight = self.producer.in_flight_count();
            if in_flight == 0 {
                return Ok(());
            }
            if last_log.elapsed() > Duration::from_secs(10) {
                last_log = Instant::now();
                tracing::warn!(in_flight, "Waiting for Kafka to acknowledge messages");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn open(&mut self) -> Result<(), CdcError> {
        if self.transactions.is_none() {
            return Ok(());
        }
        // Fences any older instance with the same transactional id and aborts what it left open.
        let producer = self.producer.clone();
        let result = tokio::task::spawn_blocking(move || producer.init_transactions(Duration::from_secs(30)))
            .await
            .map_err(|e| CdcError::definite(format!("Kafka init task failed: {e}"), "report this as a bug"))?;
        if result.is_ok()
            && let Some(tx) = &self.transactions
        {
            tracing::info!(
                kafka_txn_prefix = tx.run,
                "Kafka transactions ready; older instances with this transactional id are fenced"
            );
        }
        result.map_err(|e| match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::TransactionalIdAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed,
            ) => CdcError::definite(
                format!("not allowed to use Kafka transactions: {e}"),
                "grant WRITE on the transactional id (sink.transactional_id)",
            ),
            Some(RDKafkaErrorCode::UnsupportedVersion | RDKafkaErrorCode::InvalidTransactionTimeout) => {
                CdcError::definite(
                    format!("the Kafka cluster cannot run this transactional producer: {e}"),
                    "use a broker with transactions, or set sink.exactly_once = false",
                )
            }
            _ => CdcError::transient(format!("cannot initialise Kafka transactions (broker unreachable?): {e}")),
        })
    }

    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        self.check_failure()?;
        self.prepare_topics(batch).await?;
        self.envelope.now_us = now_us();
        let mut bytes = 0u64;
        if let Some(tx) = &mut self.transactions {
            if tx.open.is_none() {
                self.producer
                    .begin_transaction()
                    .map_err(|e| CdcError::definite(format!("cannot begin a Kafka transaction: {e}"), "restart cdc"))?;
                tx.open = Some(Vec::new());
                tx.count += 1;
                tx.label = format!("{}-{}", tx.run, tx.count);
            }
            let untracked = PendingBatch::untracked();
            bytes += self.produce_batch(batch, &untracked).await?;
            if let Some(acks) = self.transactions.as_mut().and_then(|t| t.open.as_mut()) {
                acks.push(ack);
            }
            if let Some(checkpoint) = &batch.checkpoint {
                self.commit(checkpoint).await?;
            }
            return Ok(bytes);
        }
        let pending = PendingBatch::new(ack);
        bytes += self.produce_batch(batch, &pending).await?;
        // The whole batch is handed over: the last delivery report acknowledges it.
        pending.settle();
        Ok(bytes)
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        if let Some(tx) = &mut self.transactions
            && tx.open.take().is_some()
        {
            // Ends inside a source transaction: committing would expose half of it. Its
            // batches stay unacknowledged and are replayed on restart.
            let producer = self.producer.clone();
            let aborted =
                tokio::task::spawn_blocking(move || producer.abort_transaction(Duration::from_secs(30))).await;
            if let Ok(Err(e)) = aborted {
                tracing::warn!(error = %e, "Could not abort the open Kafka transaction; the broker aborts it on timeout");
            }
            return self.check_failure();
        }
        self.wait_delivered().await
    }
}

/// Did this update change the record's key? (Then Kafka must see a delete and a create.)
fn key_changed(event: &ChangeEvent) -> bool {
    let (Some(before), Some(after)) = (&event.before, &event.after) else { return false };
    event.table.key.iter().any(|&i| before.get(i) != after.get(i))
}

/// The change's location in the source log, in the position text form (`cdc.position` header).
fn write_position_header(out: &mut String, meta: &SourceMeta) {
    let _ = match meta {
        SourceMeta::MySql { file, pos, .. } => write!(out, "mysql:file={file}:pos={pos}"),
        SourceMeta::Postgres { lsn, .. } => write!(out, "pg:lsn={}", Lsn(*lsn)),
    };
}

/// The change's transaction id (GTID or xid) for the `cdc.tx_id` header; false when unknown.
fn write_tx_id(out: &mut String, meta: &SourceMeta) -> bool {
    match meta {
        SourceMeta::MySql { gtid: Some(gtid), .. } => out.push_str(gtid),
        SourceMeta::Postgres { tx_id: Some(xid), .. } => {
            let _ = write!(out, "{xid}");
        }
        _ => return false,
    }
    true
}

async fn send(
    producer: &ThreadedProducer<KafkaContext>,
    to: (&str, Option<i32>),
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &(dyn Fn() -> OwnedHeaders + Sync),
    pending: &Arc<PendingBatch>,
    event: &ChangeEvent,
) -> Result<(), CdcError> {
    send_raw(producer, to, key, value, headers, pending, || {
        format!("change to {}.{}", event.table.id.namespace, event.table.id.name)
    })
    .await
}

/// Hands one message to librdkafka, waiting while its queue is full (backpressure).
async fn send_raw(
    producer: &ThreadedProducer<KafkaContext>,
    (topic, partition): (&str, Option<i32>),
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &(dyn Fn() -> OwnedHeaders + Sync),
    pending: &Arc<PendingBatch>,
    what: impl Fn() -> String,
) -> Result<(), CdcError> {
    // Clocks are read only once the queue is full: this is the per-message hot path.
    let mut waiting_since: Option<Instant> = None;
    let mut last_log: Option<Instant> = None;
    loop {
        let mut record = BaseRecord::with_opaque_to(topic, pending.clone()).headers(headers());
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        // Counted before the send: its delivery report may arrive before `send` returns.
        pending.add();
        let error = match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((error, _record)) => error,
        };
        // Not sent: uncount it (the batch's hand-over count keeps this from acknowledging).
        pending.settle();
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => {
                if let Some(e) = producer.context().failure() {
                    return Err(e);
                }
                let since = *waiting_since.get_or_insert_with(Instant::now);
                if last_log.get_or_insert(since).elapsed() > Duration::from_secs(10) {
                    last_log = Some(Instant::now());
                    tracing::warn!(
                        waiting_s = since.elapsed().as_secs(),
                        in_flight = producer.in_flight_count(),
                        "Kafka producer queue full: waiting for the broker to acknowledge"
                    );
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            _ => {
                let key_text = key.map(|k| String::from_utf8_lossy(&k[..k.len().min(200)]).into_owned());
                let len = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len);
                let mut e = client::delivery_error(&error, topic, key_text.as_deref(), len);
                e.cause = format!("{} ({})", e.cause, what());
                return Err(e);
            }
        }
    }
}
