//! Every number the process reports, in one place: the Prometheus names live here only.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::model::{Position, now_ms};

/// Shared, lock-light counters and the status snapshot behind `/metrics` and `/status`.
#[derive(Default)]
pub struct Metrics {
    pub name: String,
    events: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    errors_transient: AtomicU64,
    errors_definite: AtomicU64,
    events_checkpointed: AtomicU64,
    /// `events` when the current pipeline run started (a restart reads changes again).
    run_events_base: AtomicU64,
    /// Bytes of source log the durable position is behind (PostgreSQL slot lag); u64::MAX = unknown.
    source_lag_bytes: AtomicU64,
    /// Bytes of in-progress transactions held in the local spool (PostgreSQL streaming).
    spooled_bytes: AtomicU64,
    ready: AtomicBool,
    status: Mutex<StatusState>,
}

#[derive(Default, Clone)]
struct StatusState {
    phase: &'static str,
    source_position: Option<Position>,
    checkpointed_position: Option<Position>,
    checkpoint_at_ms: Option<i64>,
    /// Source commit time of the newest event received.
    source_ts_ms: Option<i64>,
    /// Wall-clock time that event was received.
    received_at_ms: Option<i64>,
    /// Source commit time of the newest change durable in the sink.
    applied_source_ts_ms: Option<i64>,
    snapshot: Option<String>,
}

/// `/status` body.
#[derive(Serialize)]
pub struct Status {
    pub name: String,
    pub phase: &'static str,
    pub ready: bool,
    pub source_position: Option<String>,
    pub checkpointed_position: Option<String>,
    pub checkpoint_age_seconds: Option<f64>,
    pub events_received: u64,
    pub events_checkpointed: u64,
    pub lag_events: u64,
    pub lag_seconds: Option<f64>,
    /// How far the sink is behind the source in time (Seconds_Behind_Source of a replica):
    /// 0 when every received change is durable, else the age of the newest durable change.
    pub applied_lag_seconds: Option<f64>,
    /// PostgreSQL: WAL bytes between the server's current position and the slot's confirmed flush.
    pub source_lag_bytes: Option<u64>,
    /// PostgreSQL: bytes of transactions streamed before their commit, held on local disk.
    pub spooled_bytes: u64,
    pub snapshot: Option<String>,
}

impl Metrics {
    pub fn new(name: impl Into<String>) -> Metrics {
        let m = Metrics { name: name.into(), source_lag_bytes: AtomicU64::new(u64::MAX), ..Default::default() };
        m.set_phase("starting");
        m
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StatusState> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_phase(&self, phase: &'static str) {
        self.state().phase = phase;
    }

    /// The source is connected and producing (snapshot or stream): `/ready` answers 200.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    pub fn set_snapshot_progress(&self, progress: Option<String>) {
        self.state().snapshot = progress;
    }

    /// A pipeline run starts: checkpointed-event counts start again from zero.
    pub fn run_started(&self) {
        self.run_events_base.store(self.events.load(Relaxed), Relaxed);
        self.events_checkpointed.store(0, Relaxed);
    }

    pub fn batch_received(&self, events: u64, checkpoint: Option<&Position>, source_ts_ms: Option<i64>) {
        self.events.fetch_add(events, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        let mut s = self.state();
        if let Some(p) = checkpoint {
            s.source_position = Some(p.clone());
        }
        if source_ts_ms.is_some() {
            s.source_ts_ms = source_ts_ms;
            s.received_at_ms = Some(now_ms());
        }
    }

    /// How far the durable position is behind the source's log head, in bytes of log
    /// (PostgreSQL slot lag, MySQL binlog bytes).
    pub fn set_source_lag_bytes(&self, bytes: u64) {
        self.source_lag_bytes.store(bytes, Relaxed);
    }

    pub fn set_spooled_bytes(&self, bytes: u64) {
        self.spooled_bytes.store(bytes, Relaxed);
    }

    pub fn bytes_written(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Relaxed);
    }

    pub fn error(&self, transient: bool) {
        if transient { &self.errors_transient } else { &self.errors_definite }.fetch_add(1, Relaxed);
    }

    /// A checkpoint was saved: everything up to `position` (`events_checkpointed` events, the
    /// newest committed on the source at `source_ts_ms`) is durable in the sink.
    pub fn checkpointed(&self, position: &Position, events_checkpointed: u64, source_ts_ms: Option<i64>) {
        self.events_checkpointed.store(events_checkpointed, Relaxed);
        let mut s = self.state();
        s.checkpointed_position = Some(position.clone());
        if source_ts_ms.is_some() {
            s.applied_source_ts_ms = source_ts_ms;
        }
        s.checkpoint_at_ms = Some(now_ms());
    }

    /// Position of the newest transaction boundary received from the source.
    pub fn source_position(&self) -> Option<Position> {
        self.state().source_position.clone()
    }

    pub fn status(&self) -> Status {
        let s = self.state().clone();
        let now = now_ms();
        let received = self.events.load(Relaxed);
        let checkpointed = self.events_checkpointed.load(Relaxed);
        let received_this_run = received.saturating_sub(self.run_events_base.load(Relaxed));
        Status {
            name: self.name.clone(),
            phase: s.phase,
            ready: self.is_ready(),
            source_position: s.source_position.map(|p| p.to_string()),
            checkpointed_position: s.checkpointed_position.map(|p| p.to_string()),
            checkpoint_age_seconds: s.checkpoint_at_ms.map(|t| (now - t).max(0) as f64 / 1000.0),
            events_received: received,
            events_checkpointed: checkpointed,
            lag_events: received_this_run.saturating_sub(checkpointed),
            // How old the newest change was when it arrived: the replica's seconds-behind-source.
            lag_seconds: match (s.source_ts_ms, s.received_at_ms) {
                (Some(src), Some(at)) => Some((at - src).max(0) as f64 / 1000.0),
                _ => None,
            },
            applied_lag_seconds: if received_this_run <= checkpointed {
                Some(0.0)
            } else {
                s.applied_source_ts_ms.map(|t| (now - t).max(0) as f64 / 1000.0)
            },
            source_lag_bytes: Some(self.source_lag_bytes.load(Relaxed)).filter(|b| *b != u64::MAX),
            spooled_bytes: self.spooled_bytes.load(Relaxed),
            snapshot: s.snapshot,
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self) -> String {
        let st = self.status();
        let label = format!("pipeline=\"{}\"", self.name.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (extra, v) in samples {
                let labels = if extra.is_empty() { label.clone() } else { format!("{label},{extra}") };
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
        metric(
            "cdc_events_total",
            "counter",
            "Change events received from the source.",
            &[("", st.events_received as f64)],
        );
        metric("cdc_bytes_total", "counter", "Bytes written to the sink.", &[("", self.bytes.load(Relaxed) as f64)]);
        metric(
            "cdc_batches_total",
            "counter",
            "Batches received from the source.",
            &[("", self.batches.load(Relaxed) as f64)],
        );
        metric(
            "cdc_errors_total",
            "counter",
            "Errors by kind (transient ones are retried).",
            &[
                ("kind=\"transient\"", self.errors_transient.load(Relaxed) as f64),
                ("kind=\"definite\"", self.errors_definite.load(Relaxed) as f64),
            ],
        );
        metric(
            "cdc_events_checkpointed_total",
            "counter",
            "Events durable in the sink and checkpointed.",
            &[("", st.events_checkpointed as f64)],
        );
        metric("cdc_lag_events", "gauge", "Events received but not yet checkpointed.", &[("", st.lag_events as f64)]);
        if let Some(age) = st.checkpoint_age_seconds {
            metric("cdc_checkpoint_age_seconds", "gauge", "Seconds since the last checkpoint was saved.", &[("", age)]);
        }
        if let Some(lag) = st.applied_lag_seconds {
            metric(
                "cdc_applied_lag_seconds",
                "gauge",
                "How far the sink is behind the source: 0 when all received changes are durable, else the age of the newest durable change.",
                &[("", lag)],
            );
        }
        if let Some(lag) = st.lag_seconds {
            metric("cdc_lag_seconds", "gauge", "Age of the newest change when it was received.", &[("", lag)]);
        }
        if let Some(bytes) = st.source_lag_bytes {
            metric(
                "cdc_source_lag_bytes",
                "gauge",
                "Bytes of source log between the server's head and the durable position (PostgreSQL: slot lag; MySQL: binlog bytes).",
                &[("", bytes as f64)],
            );
        }
        metric(
            "cdc_spooled_bytes",
            "gauge",
            "Bytes of in-progress source transactions held in the local spool until they commit.",
            &[("", st.spooled_bytes as f64)],
        );
        metric(
            "cdc_ready",
            "gauge",
            "1 when the source is connected and streaming.",
            &[("", if st.ready { 1.0 } else { 0.0 })],
        );
        out
    }
}
