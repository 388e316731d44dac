//! Drives one source into one sink with ordered checkpoints, retries and clean shutdown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Ack, AckTracker, BatchSeq, Sink, Source, SourceContext};
use crate::admin::Metrics;
use crate::config::PipelineConfig;
use crate::error::CdcError;
use crate::model::{Batch, Position};
use crate::positions::PositionStore;

/// How a pipeline run ended without error.
#[derive(Debug, PartialEq, Eq)]
pub enum PipelineOutcome {
    /// Shutdown was requested; everything received was flushed and checkpointed.
    Stopped,
    /// The source had no more input (offline files, snapshot-only).
    SourceEnded,
}

pub struct Pipeline {
    pub source: Box<dyn Source>,
    pub sink: Box<dyn Sink>,
    pub store: Arc<dyn PositionStore>,
    pub config: PipelineConfig,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

/// Exponential backoff from `retry_initial_ms` to 30 s.
#[derive(Clone, Copy)]
pub struct Backoff(Duration);

impl Backoff {
    pub fn new(initial_ms: u64) -> Backoff {
        Backoff(Duration::from_millis(initial_ms.max(1)))
    }

    /// The wait before the next retry; each call doubles the following one.
    pub fn next_wait(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
        d
    }
}

impl Pipeline {
    /// Runs until shutdown, the end of the source, or a definite error. `start` is where the
    /// source resumes; it must already be durable (it comes from the store or `--from`).
    pub async fn run(self, start: Option<Position>) -> Result<PipelineOutcome, CdcError> {
        let Pipeline { source, mut sink, store, config, metrics, shutdown } = self;
        metrics.run_started();
        let (batch_tx, mut batch_rx) = mpsc::channel::<Batch>(config.channel_batches);
        let batch_taken = Arc::new(tokio::sync::Notify::new());
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<BatchSeq>();
        let (durable_tx, durable_rx) = watch::channel(start.clone());
        let received = Arc::new(Mutex::new(Received { checkpoint: start.clone(), repeating: false }));
        let source_stop = shutdown.child_token();

        let source_task = tokio::spawn(run_source(
            source,
            start,
            batch_tx,
            SourceContext {
                shutdown: source_stop.clone(),
                durable: durable_rx,
                status: metrics.clone(),
                batch_taken: batch_taken.clone(),
            },
            received.clone(),
            config.retry_initial_ms,
        ));

        let mut tracker = AckTracker::new();
        let mut seq: BatchSeq = 0;
        let mut checkpoint =
            Checkpointer { store, metrics: metrics.clone(), durable_tx, pending: None, last_info_log: None };
        let mut tick = tokio::time::interval(Duration::from_millis(config.checkpoint_interval_ms.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sink_error: Option<CdcError> = None;
        // Set when shutdown came while the sink was unreachable: no final flush then.
        let mut sink_unreachable = false;
        let backoff = Backoff::new(config.retry_initial_ms);

        loop {
            tokio::select! {
                biased;
                Some(acked) = ack_rx.recv() => {
                    checkpoint.release(tracker.acked(acked));
                }
                _ = tick.tick() => {
                    match sink.tick().await {
                        Ok(()) => {}
                        Err(e) if e.is_transient() => tracing::warn!(error = %e, "Sink tick failed"),
                        Err(e) => {
                            metrics.error(e.is_restart());
                            sink_error = Some(e);
                            break;
                        }
                    }
                    checkpoint.save(tracker.released_events(), tracker.released_source_ts_ms()).await?;
                }
                received_batch = batch_rx.recv() => {
                    let Some(mut batch) = received_batch else { break };
                    batch_taken.notify_one();
                    batch.more_queued = !batch_rx.is_empty();
                    seq += 1;
                    let events = batch.events.len() as u64;
                    metrics.batch_received(events, batch.checkpoint.as_ref(), batch.source_ts_ms);
                    tracker.sent(seq, batch.checkpoint.clone(), events, batch.source_ts_ms);
                    {
                        let mut received = received.lock().unwrap_or_else(|e| e.into_inner());
                        if received.repeating {
                            batch.may_repeat = true;
                            received.repeating = batch.checkpoint.is_none();
                        }
                        if let Some(p) = &batch.checkpoint {
                            received.checkpoint = Some(p.clone());
                        }
                    }
                    // While the sink holds this batch (backpressure, an outage), acknowledgements
                    // of earlier batches still become durable checkpoints.
                    let write = write_with_retry(sink.as_mut(), &batch, seq, &ack_tx, &metrics, &shutdown, backoff);
                    tokio::pin!(write);
                    let written = loop {
                        tokio::select! {
                            biased;
                            written = &mut write => break written,
                            Some(acked) = ack_rx.recv() => {
                                checkpoint.release(tracker.acked(acked));
                            }
                            _ = tick.tick() => {
                                checkpoint.save(tracker.released_events(), tracker.released_source_ts_ms()).await?;
                            }
                        }
                    };
                    match written {
                        Ok(()) => {}
                        // Shutdown while the sink was away: stop without this batch; it is replayed.
                        Err(e) if e.is_transient() => {
                            tracing::info!(error = %e, "Stopping without waiting for the sink");
                            sink_unreachable = true;
                            break;
                        }
                        Err(e) => {
                            sink_error = Some(e);
                            break;
                        }
                    }
                }
            }
        }

        // The source is done (or must stop). Make what was written durable and checkpoint it.
        source_stop.cancel();
        // A source blocked on a full channel must see it closed (after an early break).
        drop(batch_rx);
        if sink_error.is_none()
            && !sink_unreachable
            && tracker.pending() > 0
            && let Err(e) = flush_with_retry(sink.as_mut(), &metrics, &shutdown, backoff).await
        {
            sink_error = Some(e);
        }
        while let Ok(acked) = ack_rx.try_recv() {
            checkpoint.release(tracker.acked(acked));
        }
        checkpoint.save(tracker.released_events(), tracker.released_source_ts_ms()).await?;
        if tracker.pending() > 0 {
            tracing::warn!(
                batches = tracker.pending(),
                "Stopped with batches not durable in the sink; they will be read again on restart"
            );
        }
        let source_result = match source_task.await {
            Ok(r) => r,
            Err(e) => Err(CdcError::definite(format!("the source task failed: {e}"), "report this as a bug")),
        };
        if let Some(e) = sink_error {
            return Err(e);
        }
        match source_result {
            Err(e) => Err(e),
            Ok(()) if shutdown.is_cancelled() => Ok(PipelineOutcome::Stopped),
            Ok(()) => Ok(PipelineOutcome::SourceEnded),
        }
    }
}

/// What the runtime has taken off the channel, shared with the task that restarts the source.
struct Received {
    /// The newest checkpoint: where a restarted source resumes.
    checkpoint: Option<Position>,
    /// The source was restarted from `checkpoint`: the batches up to its next checkpoint read
    /// again changes the sink may already hold (written, not yet committed), so they are marked
    /// `may_repeat`.
    repeating: bool,
}

/// Runs the source, restarting it after transient errors from the newest checkpoint the
/// runtime has received (once the channel is drained, so nothing is skipped).
async fn run_source(
    mut source: Box<dyn Source>,
    start: Option<Position>,
    out: mpsc::Sender<Batch>,
    ctx: SourceContext,
    received: Arc<Mutex<Received>>,
    retry_initial_ms: u64,
) -> Result<(), CdcError> {
    let mut resume = start;
    let mut backoff = Backoff::new(retry_initial_ms);
    loop {
        let started = Instant::now();
        match source.run(resume.clone(), out.clone(), ctx.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !ctx.shutdown.is_cancelled() => {
                ctx.status.error(true);
                ctx.status.set_ready(false);
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Backoff::new(retry_initial_ms);
                }
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "Source failed; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                }
                // Wait until the runtime has taken every batch, so `received` is exact.
                while out.capacity() < out.max_capacity() {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                        _ = ctx.shutdown.cancelled() => return Ok(()),
                    }
                }
                let mut received = received.lock().unwrap_or_else(|e| e.into_inner());
                received.repeating = true;
                resume = received.checkpoint.clone();
            }
            Err(e) => {
                if !e.is_transient() {
                    ctx.status.error(false);
                }
                return if ctx.shutdown.is_cancelled() && e.is_transient() { Ok(()) } else { Err(e) };
            }
        }
    }
}

async fn write_with_retry(
    sink: &mut dyn Sink,
    batch: &Batch,
    seq: BatchSeq,
    ack_tx: &mpsc::UnboundedSender<BatchSeq>,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    mut backoff: Backoff,
) -> Result<(), CdcError> {
    loop {
        match sink.write(batch, Ack::new(seq, ack_tx.clone())).await {
            Ok(bytes) => {
                metrics.bytes_written(bytes);
                return Ok(());
            }
            Err(e) if e.is_transient() => {
                metrics.error(true);
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "Sink write failed; waiting for the sink");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => {
                        return Err(CdcError::transient(format!("shutdown while waiting for the sink: {e}")));
                    }
                }
            }
            Err(e) => {
                metrics.error(e.is_restart());
                return Err(e);
            }
        }
    }
}

async fn flush_with_retry(
    sink: &mut dyn Sink,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    mut backoff: Backoff,
) -> Result<(), CdcError> {
    loop {
        match sink.flush().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !shutdown.is_cancelled() => {
                metrics.error(true);
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "Sink flush failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                metrics.error(!e.is_transient());
                return Err(e);
            }
        }
    }
}

struct Checkpointer {
    store: Arc<dyn PositionStore>,
    metrics: Arc<Metrics>,
    durable_tx: watch::Sender<Option<Position>>,
    /// Newest released checkpoint not yet saved.
    pending: Option<Position>,
    last_info_log: Option<Instant>,
}

impl Checkpointer {
    /// Takes a checkpoint the acknowledgements released, to be saved at the next tick.
    fn release(&mut self, released: Option<Position>) {
        if released.is_some() {
            self.pending = released;
        }
    }

    /// Saves the pending checkpoint, if any, then tells the source it is durable.
    async fn save(&mut self, events_checkpointed: u64, source_ts_ms: Option<i64>) -> Result<(), CdcError> {
        let Some(position) = self.pending.take() else {
            return Ok(());
        };
        match self.store.save(&position).await {
            Ok(_) => {
                self.metrics.checkpointed(&position, events_checkpointed, source_ts_ms);
                let _ = self.durable_tx.send(Some(position.clone()));
                if self.last_info_log.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                    tracing::info!(position = %position, store = %self.store.describe(), "Checkpoint saved");
                    self.last_info_log = Some(Instant::now());
                } else {
                    tracing::debug!(position = %position, "Checkpoint saved");
                }
                Ok(())
            }
            Err(e) if e.is_transient() => {
                // Keep it pending; the next tick tries again with this or a newer position.
                self.metrics.error(true);
                tracing::warn!(error = %e, "Cannot save the checkpoint; will retry");
                self.pending = Some(position);
                Ok(())
            }
            Err(e) => {
                self.metrics.error(false);
                Err(e)
            }
        }
    }
}
