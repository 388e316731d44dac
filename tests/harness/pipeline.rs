//! Running a real pipeline in-process, collecting what the sink receives as Debezium JSON.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cdc::admin::Metrics;
use cdc::config::Config;
use cdc::error::CdcError;
use cdc::format::debezium::{EnvelopeContext, write_envelope, write_key};
use cdc::model::{Batch, Position};
use cdc::pipeline::{Ack, Pipeline, PipelineOutcome, Sink};
use cdc::positions::{FilePositionStore, PositionStore};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

/// Acknowledges every batch at once and keeps its events as Debezium JSON, and their keys
/// (what a Kafka record's key would be).
#[derive(Clone)]
pub struct CollectSink {
    pub events: Arc<Mutex<Vec<Json>>>,
    pub keys: Arc<Mutex<Vec<Json>>>,
    /// `write` waits while the sink has at least this many events: a sink that holds the
    /// pipeline back (`usize::MAX`, the default: never).
    pub hold_at: Arc<AtomicUsize>,
}

impl Default for CollectSink {
    fn default() -> Self {
        CollectSink { events: Arc::default(), keys: Arc::default(), hold_at: Arc::new(AtomicUsize::new(usize::MAX)) }
    }
}

#[async_trait]
impl Sink for CollectSink {
    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        while self.events.lock().unwrap().len() >= self.hold_at.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ctx = EnvelopeContext { name: "test".into(), now_us: 0 };
        let mut got = Vec::with_capacity(batch.events.len());
        let mut keys = Vec::with_capacity(batch.events.len());
        for e in &batch.events {
            let mut buf = Vec::new();
            write_envelope(&mut buf, e, &ctx);
            got.push(serde_json::from_slice(&buf).expect("envelope is valid JSON"));
            buf.clear();
            write_key(&mut buf, e);
            keys.push(serde_json::from_slice(&buf).expect("key is valid JSON"));
        }
        self.events.lock().unwrap().extend(got);
        self.keys.lock().unwrap().extend(keys);
        ack.done();
        Ok(0)
    }
    async fn flush(&mut self) -> Result<(), CdcError> {
        Ok(())
    }
}

pub struct RunningPipeline {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<PipelineOutcome, CdcError>>,
    pub events: Arc<Mutex<Vec<Json>>>,
    pub keys: Arc<Mutex<Vec<Json>>>,
    /// See `CollectSink::hold_at`.
    pub hold_at: Arc<AtomicUsize>,
    pub store: Arc<FilePositionStore>,
    pub metrics: Arc<Metrics>,
}

/// Starts a pipeline from a config text (its sink section is ignored: events are collected).
pub async fn start_pipeline(config_text: &str, positions: &std::path::Path, from: Option<Position>) -> RunningPipeline {
    // Logs show with --nocapture; RUST_LOG selects the level.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_test_writer()
        .try_init();
    let config = Config::parse(config_text, "test.toml").expect("valid test config");
    let store = Arc::new(FilePositionStore::new(positions, &config.name));
    let start = match from {
        Some(p) => {
            store.reset(&p).await.unwrap();
            Some(p)
        }
        None => store.load().await.unwrap(),
    };
    let sink = CollectSink::default();
    let (events, keys, hold_at) = (sink.events.clone(), sink.keys.clone(), sink.hold_at.clone());
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::new(&config.name));
    let pipeline = Pipeline {
        source: cdc::sources::build(&config).expect("source builds"),
        sink: Box::new(sink),
        store: store.clone(),
        config: config.pipeline.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    };
    let task = tokio::spawn(pipeline.run(start));
    RunningPipeline { shutdown, task, events, keys, hold_at, store, metrics }
}

impl RunningPipeline {
    /// Waits until at least `n` events arrived (panics after 60 s), returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Json> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let got = self.events.lock().unwrap();
                if got.len() >= n {
                    return got.clone();
                }
            }
            if self.task.is_finished() {
                panic!(
                    "pipeline ended early with {} events: {:?}",
                    self.events.lock().unwrap().len(),
                    self.metrics.status().phase
                );
            }
            assert!(Instant::now() < deadline, "only {} of {n} events after 60 s", self.events.lock().unwrap().len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until an event matching `is` arrived (panics after 60 s naming `what`).
    pub async fn wait_for_event(&self, what: &str, is: impl Fn(&Json) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.events.lock().unwrap().iter().any(&is) {
            assert!(Instant::now() < deadline, "{what} never came");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the stored position carries initial-snapshot progress (60 s at most).
    pub async fn wait_for_snapshot_progress(&self) {
        use cdc::positions::PositionStore;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stored = self.store.load().await.unwrap();
            if stored.as_ref().is_some_and(|s| s.snapshot_progress().is_some()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no snapshot progress stored: position {stored:?}, {} events, phase {}",
                self.events.lock().unwrap().len(),
                self.metrics.status().phase
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sink stops taking batches once it has `n` events (0: at once).
    pub fn hold_at(&self, n: usize) {
        self.hold_at.store(n, Relaxed);
    }

    /// The sink takes batches again.
    pub fn release(&self) {
        self.hold_at.store(usize::MAX, Relaxed);
    }

    /// Waits until the metrics say the source is streaming.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(self.metrics.is_ready() && self.metrics.status().phase == "streaming") {
            if self.task.is_finished() {
                panic!("pipeline ended before streaming");
            }
            assert!(Instant::now() < deadline, "pipeline not streaming after 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the pipeline to fail (60 s at most) and returns its error, which must be definite.
    pub async fn definite_error(self) -> String {
        let outcome =
            tokio::time::timeout(Duration::from_secs(60), self.task).await.expect("fails within 60 s").unwrap();
        let err = outcome.expect_err("the pipeline should fail");
        assert!(!err.is_transient(), "{err}");
        err.to_string()
    }

    /// Graceful stop: returns the outcome and the stored position.
    pub async fn stop(self) -> (Result<PipelineOutcome, CdcError>, Option<Position>, Vec<Json>) {
        self.shutdown.cancel();
        let outcome =
            tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("stops within 30 s").unwrap();
        let pos = self.store.load().await.unwrap();
        let events = self.events.lock().unwrap().clone();
        (outcome, pos, events)
    }
}

/// Applies change events to per-table row maps keyed by primary key (the whole row for a
/// table without one), as a replica would.
pub fn replay(
    events: &[Json],
    key_of: impl Fn(&str, &Json) -> String,
) -> std::collections::BTreeMap<(String, String), Json> {
    let mut rows = std::collections::BTreeMap::new();
    for e in events {
        let table = e["source"]["table"].as_str().unwrap().to_string();
        match e["op"].as_str().unwrap() {
            "r" | "c" | "u" => {
                if e["op"] == "u" {
                    rows.remove(&(table.clone(), key_of(&table, &e["before"])));
                }
                rows.insert((table.clone(), key_of(&table, &e["after"])), e["after"].clone());
            }
            "d" => {
                rows.remove(&(table.clone(), key_of(&table, &e["before"])));
            }
            other => panic!("unexpected op {other}"),
        }
    }
    rows
}
