//! The runtime between a source and a sink.
//!
//! ```text
//!  Source::run ──Batch──▶ bounded channel ──▶ runtime ──write(batch, Ack)──▶ Sink
//!      ▲                                        │                            │
//!      │ durable position (watch)                ◀──────── Ack::done ─────────┘
//!      └────────────── checkpointer ◀── AckTracker (releases in source order)
//!                            │
//!                       PositionStore
//! ```
//!
//! A position is saved only when every batch before it is acknowledged durable, and only
//! positions the source marked as transaction boundaries are ever saved.

mod acks;
mod runtime;

pub use acks::{AckTracker, BatchSeq};
pub use runtime::{Backoff, Pipeline, PipelineOutcome};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::error::CdcError;
use crate::model::{Batch, Position};

/// What a source is told while it runs.
#[derive(Clone)]
pub struct SourceContext {
    /// Fires on shutdown: stop reading, return `Ok(())` promptly.
    pub shutdown: CancellationToken,
    /// The newest position durable downstream (PostgreSQL sources report it as flush LSN).
    pub durable: watch::Receiver<Option<Position>>,
    pub status: std::sync::Arc<crate::admin::Metrics>,
    /// Notified (one stored permit) each time the runtime takes a batch off the channel, so a
    /// source holding a partial batch back while the sink is busy can send it the moment the
    /// sink is free.
    pub batch_taken: std::sync::Arc<tokio::sync::Notify>,
}

/// A source of change events.
///
/// Contract:
/// * `run` sends batches in source commit order, starting strictly after `start` (or from the
///   source's own default: snapshot or current position, when `start` is `None`).
/// * A batch's `checkpoint`, when set, is the transaction boundary right after the batch's
///   last event (use [`Batch::cut`]): resuming from it neither skips nor repeats a change of
///   any transaction after it, and a sink may commit "the batch with its position" as a unit.
/// * The channel is bounded: `send` waiting is the backpressure; never buffer around it.
/// * Returns `Ok(())` when shut down or when a finite input ends. A transient error makes the
///   runtime call `run` again, from the last checkpoint it handed over; a definite error stops.
/// * A source must not tell its server anything is processed beyond `durable`.
#[async_trait]
pub trait Source: Send {
    async fn run(
        &mut self,
        start: Option<Position>,
        out: mpsc::Sender<Batch>,
        ctx: SourceContext,
    ) -> Result<(), CdcError>;
}

/// Handed to the sink with each batch; completing it says the whole batch is durable.
/// Dropping it without `done` means the batch is not durable: the checkpoint never passes it.
#[derive(Debug)]
pub struct Ack {
    seq: BatchSeq,
    tx: mpsc::UnboundedSender<BatchSeq>,
}

impl Ack {
    pub fn new(seq: BatchSeq, tx: mpsc::UnboundedSender<BatchSeq>) -> Ack {
        Ack { seq, tx }
    }

    pub fn seq(&self) -> BatchSeq {
        self.seq
    }

    /// Marks the batch durable. May be called from any task, in any order across batches.
    pub fn done(self) {
        // The runtime may already be gone at shutdown; nothing left to tell then.
        let _ = self.tx.send(self.seq);
    }
}

/// A destination of change events.
///
/// Contract:
/// * `write` is called with batches in source order and returns once the sink has *accepted*
///   the batch; the sink completes `ack` once the batch is *durable* (possibly later, in any
///   order). Delivery is at-least-once: after a crash a sink sees again the batches after the
///   last checkpoint, so it must tolerate repeats (idempotent keys, or position-aware writes).
/// * An `Err` means the batch was not accepted as a whole. If transient, the runtime calls
///   `write` again with the same batch (and a fresh `Ack`) after a backoff; parts of it that
///   were written before may be written twice. If definite, the pipeline stops.
/// * `flush` returns only when everything accepted so far is durable and acknowledged.
#[async_trait]
pub trait Sink: Send {
    /// Called once before the stored position is read: a sink that keeps the position
    /// itself (Kafka transactions, database sink) fences older instances here.
    async fn open(&mut self) -> Result<(), CdcError> {
        Ok(())
    }

    /// Returns the number of bytes written (for metrics).
    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError>;

    /// Called every checkpoint interval: a sink that confirms writes lazily (the database sink
    /// reads a batch's results while sending the next) confirms what is outstanding, so acks
    /// do not wait for the next batch when the source is idle. Errors are handled like
    /// `write` errors.
    async fn tick(&mut self) -> Result<(), CdcError> {
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), CdcError>;
}
