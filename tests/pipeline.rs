//! The pipeline against an in-memory source and a fault-injecting sink: checkpoints never pass
//! an unacknowledged event, and crash + restart delivers every event at least once, in order per key.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cdc::admin::Metrics;
use cdc::config::PipelineConfig;
use cdc::error::CdcError;
use cdc::model::*;
use cdc::pipeline::{Ack, Pipeline, PipelineOutcome, Sink, Source, SourceContext};
use cdc::positions::{FilePositionStore, PositionStore};
use proptest::prelude::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Tiny deterministic generator so a failing seed replays exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn table() -> Arc<TableSchema> {
    Arc::new(TableSchema {
        id: TableId::new("app", "t"),
        columns: vec![
            Column {
                name: "k".into(),
                source_type: "int".into(),
                kind: ColumnType::Int { bytes: 4, unsigned: false },
                nullable: false,
                charset: None,
                existing_rows_value: None,
            },
            Column {
                name: "id".into(),
                source_type: "bigint".into(),
                kind: ColumnType::Int { bytes: 8, unsigned: false },
                nullable: false,
                charset: None,
                existing_rows_value: None,
            },
        ],
        key: vec![0],
        version: 1,
    })
}

fn lsn_pos(n: u64) -> Position {
    Position::Postgres(PgPosition { lsn: Lsn(n), tx_lsn: None, snapshot: None })
}

/// Event `id` of transaction `tx` on key `key`.
#[derive(Clone, Copy, Debug)]
struct Planned {
    id: u64,
    key: i64,
    tx: u64,
}

/// Transactions 1..=n with 1–4 events each; transaction `tx` ends at LSN `tx`.
fn plan(seed: u64, txs: u64) -> Vec<Planned> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    for tx in 1..=txs {
        for _ in 0..1 + rng.below(4) {
            out.push(Planned { id: out.len() as u64, key: rng.below(5) as i64, tx });
        }
    }
    out
}

/// Sends the planned transactions after `start`; a transaction may be split over two batches,
/// only the last of which carries the checkpoint.
struct MemorySource {
    plan: Vec<Planned>,
    seed: u64,
}

#[async_trait]
impl Source for MemorySource {
    async fn run(
        &mut self,
        start: Option<Position>,
        out: mpsc::Sender<Batch>,
        ctx: SourceContext,
    ) -> Result<(), CdcError> {
        let after = match start {
            Some(Position::Postgres(p)) => p.lsn.0,
            _ => 0,
        };
        let mut rng = Rng(self.seed ^ 0x9e37_79b9);
        let table = table();
        let mut by_tx: BTreeMap<u64, Vec<Planned>> = BTreeMap::new();
        for p in self.plan.iter().filter(|p| p.tx > after) {
            by_tx.entry(p.tx).or_default().push(*p);
        }
        for (tx, events) in by_tx {
            let split = if events.len() > 1 && rng.below(3) == 0 {
                1 + rng.below(events.len() as u64 - 1) as usize
            } else {
                events.len()
            };
            for (part, chunk) in [&events[..split], &events[split..]].into_iter().enumerate() {
                if chunk.is_empty() {
                    continue;
                }
                let last = part == 1 || split == events.len();
                let batch = Batch {
                    events: chunk.iter().map(|p| event(&table, p)).collect(),
                    checkpoint: last.then(|| lsn_pos(tx)),
                    source_ts_ms: Some(0),
                    ..Batch::default()
                };
                tokio::select! {
                    r = out.send(batch) => if r.is_err() { return Ok(()) },
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                }
            }
        }
        Ok(())
    }
}

fn event(table: &Arc<TableSchema>, p: &Planned) -> ChangeEvent {
    ChangeEvent {
        op: Op::Create,
        table: table.clone(),
        before: None,
        after: Some(vec![Value::Int(p.key), Value::Int(p.id as i64)]),
        source: SourceInfo {
            ts_ms: 0,
            snapshot: SnapshotMarker::No,
            meta: SourceMeta::Postgres {
                database: "app".into(),
                tx_id: Some(p.tx as u32),
                lsn: p.tx,
                last_commit_lsn: None,
                xmin: None,
            },
        },
        transaction: None,
    }
}

fn event_id(e: &ChangeEvent) -> u64 {
    match e.after.as_ref().map(|r| &r[1]) {
        Some(Value::Int(i)) => *i as u64,
        other => panic!("unexpected row {other:?}"),
    }
}

/// What the fault sink made durable, shared across restarts like a real external system.
#[derive(Default)]
struct Outside {
    /// (run number, event id) in the order the sink appended them.
    appended: Vec<(u32, u64)>,
    /// Events whose batch was acknowledged.
    acked: HashSet<u64>,
}

/// Fails writes (transiently), delays and reorders acknowledgements, and forgets held acks on a crash.
struct FaultSink {
    run: u32,
    rng: Rng,
    outside: Arc<Mutex<Outside>>,
    held: Vec<(Ack, Vec<u64>)>,
}

impl FaultSink {
    fn release(&mut self, all: bool) {
        while !self.held.is_empty() {
            if !all && self.rng.below(2) == 0 {
                break;
            }
            let i = self.rng.below(self.held.len() as u64) as usize;
            let (ack, ids) = self.held.swap_remove(i);
            self.outside.lock().unwrap().acked.extend(ids);
            ack.done();
        }
    }
}

#[async_trait]
impl Sink for FaultSink {
    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        if self.rng.below(6) == 0 {
            return Err(CdcError::transient("injected failure"));
        }
        if self.rng.below(4) == 0 {
            tokio::time::sleep(Duration::from_micros(200 + self.rng.below(800))).await;
        }
        let ids: Vec<u64> = batch.events.iter().map(event_id).collect();
        {
            let mut o = self.outside.lock().unwrap();
            for id in &ids {
                o.appended.push((self.run, *id));
            }
        }
        self.held.push((ack, ids));
        self.release(false);
        Ok(0)
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        self.release(true);
        Ok(())
    }
}

/// Checks, at every save, that every event of every transaction up to the position is acked.
struct CheckingStore {
    inner: FilePositionStore,
    plan: Vec<Planned>,
    outside: Arc<Mutex<Outside>>,
}

#[async_trait]
impl PositionStore for CheckingStore {
    async fn load(&self) -> Result<Option<Position>, CdcError> {
        self.inner.load().await
    }
    async fn save(&self, position: &Position) -> Result<bool, CdcError> {
        let Position::Postgres(p) = position else { panic!() };
        {
            let o = self.outside.lock().unwrap();
            for e in self.plan.iter().filter(|e| e.tx <= p.lsn.0) {
                assert!(o.acked.contains(&e.id), "checkpoint {position} passes unacknowledged event {}", e.id);
            }
        }
        self.inner.save(position).await
    }
    async fn reset(&self, position: &Position) -> Result<(), CdcError> {
        self.inner.reset(position).await
    }
    fn describe(&self) -> String {
        "checking".into()
    }
}

fn scenario(seed: u64, crashes: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(seed, 60);
    let outside = Arc::new(Mutex::new(Outside::default()));
    let mut rng = Rng(seed.wrapping_mul(31) | 1);
    rt.block_on(async {
        for run in 0..=crashes {
            let store = Arc::new(CheckingStore {
                inner: FilePositionStore::new(dir.path().join("p.json"), "t"),
                plan: plan.clone(),
                outside: outside.clone(),
            });
            let start = store.load().await.unwrap();
            let pipeline = Pipeline {
                source: Box::new(MemorySource { plan: plan.clone(), seed: seed + run as u64 }),
                sink: Box::new(FaultSink {
                    run,
                    rng: Rng(seed ^ ((run as u64 + 7) * 0x2545_f491)),
                    outside: outside.clone(),
                    held: vec![],
                }),
                store,
                config: PipelineConfig {
                    channel_batches: 2,
                    batch_events: 4,
                    checkpoint_interval_ms: 1 + rng.below(3),
                    retry_initial_ms: 1,
                },
                metrics: Arc::new(Metrics::new("t")),
                shutdown: CancellationToken::new(),
            };
            let task = tokio::spawn(pipeline.run(start));
            if run < crashes {
                // Crash: the whole pipeline future is dropped mid-flight, like kill -9.
                tokio::time::sleep(Duration::from_micros(rng.below(15_000))).await;
                task.abort();
                let _ = task.await;
            } else {
                let outcome =
                    tokio::time::timeout(Duration::from_secs(60), task).await.expect("final run hangs").unwrap();
                assert_eq!(outcome.unwrap(), PipelineOutcome::SourceEnded);
            }
        }
    });
    let o = outside.lock().unwrap();
    let delivered: HashSet<u64> = o.appended.iter().map(|(_, id)| *id).collect();
    for e in &plan {
        assert!(delivered.contains(&e.id), "event {} of tx {} never delivered (seed {seed})", e.id, e.tx);
    }
    // Within one run, each key's events arrive in source order (ids increase).
    let key_of: BTreeMap<u64, i64> = plan.iter().map(|e| (e.id, e.key)).collect();
    let mut last: BTreeMap<(u32, i64), u64> = BTreeMap::new();
    for (run, id) in &o.appended {
        let k = (*run, key_of[id]);
        if let Some(prev) = last.insert(k, *id) {
            assert!(*id > prev, "run {run}: key {} got event {id} after {prev} (seed {seed})", k.1);
        }
    }
    // The final checkpoint is the last transaction.
    let (p, _, _) = FilePositionStore::read(&dir.path().join("p.json")).unwrap().unwrap();
    assert_eq!(p, lsn_pos(60));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn crash_and_restart_delivers_everything_in_order(seed in 1u64..u64::MAX, crashes in 0u32..4) {
        scenario(seed, crashes);
    }
}

/// Shutdown drains what the source produced, flushes, and checkpoints it.
#[test]
fn shutdown_flushes_and_checkpoints() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let outside = Arc::new(Mutex::new(Outside::default()));
        let store = Arc::new(FilePositionStore::new(dir.path().join("p.json"), "t"));
        let shutdown = CancellationToken::new();
        // A source that sends 3 transactions and then waits for shutdown.
        struct Waits;
        #[async_trait]
        impl Source for Waits {
            async fn run(
                &mut self,
                _s: Option<Position>,
                out: mpsc::Sender<Batch>,
                ctx: SourceContext,
            ) -> Result<(), CdcError> {
                let t = table();
                for tx in 1..=3 {
                    let e = event(&t, &Planned { id: tx, key: 1, tx });
                    let _ = out
                        .send(Batch {
                            events: vec![e],
                            checkpoint: Some(lsn_pos(tx)),
                            source_ts_ms: None,
                            ..Batch::default()
                        })
                        .await;
                }
                ctx.shutdown.cancelled().await;
                Ok(())
            }
        }
        let pipeline = Pipeline {
            source: Box::new(Waits),
            // Never releases acks on its own: only flush does.
            sink: Box::new(FaultSink { run: 0, rng: Rng(2), outside: outside.clone(), held: vec![] }),
            store: store.clone(),
            config: PipelineConfig {
                channel_batches: 4,
                batch_events: 4,
                checkpoint_interval_ms: 3_600_000,
                retry_initial_ms: 1,
            },
            metrics: Arc::new(Metrics::new("t")),
            shutdown: shutdown.clone(),
        };
        let task = tokio::spawn(pipeline.run(None));
        tokio::time::sleep(Duration::from_millis(100)).await;
        shutdown.cancel();
        assert_eq!(task.await.unwrap().unwrap(), PipelineOutcome::Stopped);
        assert_eq!(store.load().await.unwrap(), Some(lsn_pos(3)));
    });
}

/// A definite sink error stops the pipeline with that error, keeping the checkpoint of what was acked.
#[test]
fn definite_sink_error_stops_with_the_cause() {
    struct Refuses;
    #[async_trait]
    impl Sink for Refuses {
        async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
            if batch.checkpoint == Some(lsn_pos(3)) {
                return Err(CdcError::definite("row refused by the target", "fix the constraint"));
            }
            ack.done();
            Ok(0)
        }
        async fn flush(&mut self) -> Result<(), CdcError> {
            Ok(())
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FilePositionStore::new(dir.path().join("p.json"), "t"));
        let pipeline = Pipeline {
            source: Box::new(MemorySource { plan: plan(5, 10), seed: 5 }),
            sink: Box::new(Refuses),
            store: store.clone(),
            config: PipelineConfig::default(),
            metrics: Arc::new(Metrics::new("t")),
            shutdown: CancellationToken::new(),
        };
        let err = pipeline.run(None).await.unwrap_err();
        assert_eq!(err.to_string(), "row refused by the target; remedy: fix the constraint");
        assert_eq!(store.load().await.unwrap(), Some(lsn_pos(2)));
    });
}

/// A source that fails (transiently) after sending a batch without a checkpoint is restarted
/// from the last checkpoint; the batches it sends again, up to its next checkpoint, are marked
/// `may_repeat` (the sink may hold them already, written but not committed), later ones not.
#[test]
fn batches_read_again_after_a_source_restart_are_marked_may_repeat() {
    /// First run: tx 1 whole, then the first half of tx 2, then a failure. Later runs: the
    /// rest from where they are told to resume.
    struct FailsOnce {
        runs: Arc<Mutex<Vec<Option<Position>>>>,
    }
    #[async_trait]
    impl Source for FailsOnce {
        async fn run(
            &mut self,
            start: Option<Position>,
            out: mpsc::Sender<Batch>,
            _: SourceContext,
        ) -> Result<(), CdcError> {
            let first = self.runs.lock().unwrap().is_empty();
            self.runs.lock().unwrap().push(start.clone());
            let table = table();
            let batch = |ids: &[u64], tx: u64, checkpoint: bool| Batch {
                events: ids.iter().map(|&id| event(&table, &Planned { id, key: id as i64, tx })).collect(),
                checkpoint: checkpoint.then(|| lsn_pos(tx)),
                source_ts_ms: Some(0),
                ..Batch::default()
            };
            let after = match start {
                Some(Position::Postgres(p)) => p.lsn.0,
                _ => 0,
            };
            let mut batches = vec![];
            if after < 1 {
                batches.push(batch(&[0, 1], 1, true));
            }
            batches.push(batch(&[2, 3], 2, false));
            if first {
                for b in batches {
                    out.send(b).await.map_err(|_| CdcError::transient("closed"))?;
                }
                return Err(CdcError::transient("connection lost"));
            }
            batches.extend([batch(&[4], 2, true), batch(&[5], 3, true)]);
            for b in batches {
                out.send(b).await.map_err(|_| CdcError::transient("closed"))?;
            }
            Ok(())
        }
    }
    /// (event ids, may_repeat) of a batch written.
    type Written = (Vec<u64>, bool);
    struct Records(Arc<Mutex<Vec<Written>>>);
    #[async_trait]
    impl Sink for Records {
        async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
            self.0.lock().unwrap().push((batch.events.iter().map(event_id).collect(), batch.may_repeat));
            ack.done();
            Ok(0)
        }
        async fn flush(&mut self) -> Result<(), CdcError> {
            Ok(())
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let runs = Arc::new(Mutex::new(vec![]));
        let written = Arc::new(Mutex::new(vec![]));
        let pipeline = Pipeline {
            source: Box::new(FailsOnce { runs: runs.clone() }),
            sink: Box::new(Records(written.clone())),
            store: Arc::new(FilePositionStore::new(dir.path().join("p.json"), "t")),
            config: PipelineConfig { retry_initial_ms: 1, ..PipelineConfig::default() },
            metrics: Arc::new(Metrics::new("t")),
            shutdown: CancellationToken::new(),
        };
        assert_eq!(pipeline.run(None).await.unwrap(), PipelineOutcome::SourceEnded);
        assert_eq!(*runs.lock().unwrap(), vec![None, Some(lsn_pos(1))]);
        assert_eq!(
            *written.lock().unwrap(),
            vec![(vec![0, 1], false), (vec![2, 3], false), (vec![2, 3], true), (vec![4], true), (vec![5], false)]
        );
    });
}

/// A batch handed to the sink while the next one already waits is marked `more_queued` (a
/// database sink then commits with a later checkpoint); one with nothing behind it is not.
#[test]
fn batches_with_the_next_one_waiting_are_marked_more_queued() {
    /// Sends batch 1, waits until the sink holds it, then sends 2 and 3 and lets the sink go.
    struct ThreeBatches {
        sink_has_first: Arc<tokio::sync::Notify>,
        sink_may_go: Arc<tokio::sync::Notify>,
    }
    #[async_trait]
    impl Source for ThreeBatches {
        async fn run(
            &mut self,
            _: Option<Position>,
            out: mpsc::Sender<Batch>,
            _: SourceContext,
        ) -> Result<(), CdcError> {
            let table = table();
            let batch = |tx: u64| Batch {
                events: vec![event(&table, &Planned { id: tx, key: tx as i64, tx })],
                checkpoint: Some(lsn_pos(tx)),
                source_ts_ms: Some(0),
                ..Batch::default()
            };
            let closed = |_| CdcError::transient("closed");
            out.send(batch(1)).await.map_err(closed)?;
            self.sink_has_first.notified().await;
            out.send(batch(2)).await.map_err(closed)?;
            out.send(batch(3)).await.map_err(closed)?;
            self.sink_may_go.notify_one();
            Ok(())
        }
    }
    struct Records {
        written: Arc<Mutex<Vec<(u64, bool)>>>,
        sink_has_first: Arc<tokio::sync::Notify>,
        sink_may_go: Arc<tokio::sync::Notify>,
    }
    #[async_trait]
    impl Sink for Records {
        async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
            let first = self.written.lock().unwrap().is_empty();
            self.written.lock().unwrap().push((event_id(&batch.events[0]), batch.more_queued));
            if first {
                self.sink_has_first.notify_one();
                self.sink_may_go.notified().await;
            }
            ack.done();
            Ok(0)
        }
        async fn flush(&mut self) -> Result<(), CdcError> {
            Ok(())
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (sink_has_first, sink_may_go) =
            (Arc::new(tokio::sync::Notify::new()), Arc::new(tokio::sync::Notify::new()));
        let written = Arc::new(Mutex::new(vec![]));
        let pipeline = Pipeline {
            source: Box::new(ThreeBatches { sink_has_first: sink_has_first.clone(), sink_may_go: sink_may_go.clone() }),
            sink: Box::new(Records { written: written.clone(), sink_has_first, sink_may_go }),
            store: Arc::new(FilePositionStore::new(dir.path().join("p.json"), "t")),
            config: PipelineConfig::default(),
            metrics: Arc::new(Metrics::new("t")),
            shutdown: CancellationToken::new(),
        };
        assert_eq!(pipeline.run(None).await.unwrap(), PipelineOutcome::SourceEnded);
        assert_eq!(*written.lock().unwrap(), vec![(1, false), (2, true), (3, false)]);
    });
}
