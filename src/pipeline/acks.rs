//! Ordered acknowledgements: sinks may report batches durable in any order; a checkpoint
//! is released only when every batch up to it is durable.

use std::collections::BTreeMap;

use crate::model::Position;

/// Sequence number the runtime gives each batch, from 1, in source order.
pub type BatchSeq = u64;

#[derive(Debug, Default)]
pub struct AckTracker {
    /// Highest sequence number with every batch up to it acknowledged.
    released: BatchSeq,
    /// Batches handed to the sink and not yet released: checkpoint, event count, source time
    /// of its newest change, acked?
    in_flight: BTreeMap<BatchSeq, (Option<Position>, u64, Option<i64>, bool)>,
    /// Events in all released batches.
    released_events: u64,
    /// Source commit time (ms) of the newest change released.
    released_source_ts_ms: Option<i64>,
}

impl AckTracker {
    pub fn new() -> AckTracker {
        AckTracker::default()
    }

    /// Records that batch `seq` (carrying `checkpoint`, its newest change committed at
    /// `source_ts_ms`) was handed to the sink.
    pub fn sent(&mut self, seq: BatchSeq, checkpoint: Option<Position>, events: u64, source_ts_ms: Option<i64>) {
        self.in_flight.insert(seq, (checkpoint, events, source_ts_ms, false));
    }

    /// Records the sink's acknowledgement of `seq` and returns the newest checkpoint that is now
    /// safe: the last checkpoint among the contiguous acknowledged prefix, if it moved.
    pub fn acked(&mut self, seq: BatchSeq) -> Option<Position> {
        match self.in_flight.get_mut(&seq) {
            Some(entry) => entry.3 = true,
            None => return None, // unknown or already released: a duplicate ack changes nothing
        }
        let mut newest = None;
        while let Some(entry) = self.in_flight.first_entry() {
            if !entry.get().3 || *entry.key() != self.released + 1 {
                break;
            }
            let (seq, (checkpoint, events, source_ts_ms, _)) = entry.remove_entry();
            self.released = seq;
            self.released_events += events;
            if source_ts_ms.is_some() {
                self.released_source_ts_ms = source_ts_ms;
            }
            if checkpoint.is_some() {
                newest = checkpoint;
            }
        }
        newest
    }

    /// Batches handed to the sink and not yet released.
    pub fn pending(&self) -> usize {
        self.in_flight.len()
    }

    pub fn released(&self) -> BatchSeq {
        self.released
    }

    /// Events in all batches released so far.
    pub fn released_events(&self) -> u64 {
        self.released_events
    }

    /// Source commit time (ms since the epoch) of the newest change released so far.
    pub fn released_source_ts_ms(&self) -> Option<i64> {
        self.released_source_ts_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Lsn, PgPosition};
    use proptest::prelude::*;

    fn pos(n: u64) -> Position {
        Position::Postgres(PgPosition { lsn: Lsn(n), tx_lsn: None, snapshot: None })
    }

    #[test]
    fn out_of_order_acks_release_in_order() {
        let mut t = AckTracker::new();
        t.sent(1, Some(pos(10)), 1, None);
        t.sent(2, None, 1, None);
        t.sent(3, Some(pos(30)), 1, None);
        assert_eq!(t.acked(3), None);
        assert_eq!(t.acked(2), None);
        assert_eq!(t.acked(1), Some(pos(30)));
        assert_eq!(t.pending(), 0);
    }

    proptest! {
        /// Whatever order acks arrive in (and whichever never arrive), a released checkpoint
        /// never passes an unacknowledged batch.
        #[test]
        fn never_passes_an_unacked_batch(
            checkpoints in prop::collection::vec(any::<bool>(), 1..60),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
        ) {
            let n = checkpoints.len() as u64;
            let mut t = AckTracker::new();
            for (i, has) in checkpoints.iter().enumerate() {
                let seq = i as u64 + 1;
                t.sent(seq, has.then(|| pos(seq)), 2, None);
            }
            let mut acked = vec![false; n as usize + 1];
            let mut last_released = 0u64;
            for idx in order {
                let seq = idx.index(n as usize) as u64 + 1;
                acked[seq as usize] = true;
                if let Some(Position::Postgres(p)) = t.acked(seq) {
                    let cp = p.lsn.0;
                    prop_assert!(cp > last_released);
                    prop_assert!((1..=cp).all(|s| acked[s as usize]), "checkpoint {} passes an unacked batch", cp);
                    prop_assert!(checkpoints[cp as usize - 1]);
                    last_released = cp;
                }
            }
            // Everything acknowledged up to the first gap is released.
            let prefix = (1..=n).take_while(|&s| acked[s as usize]).last().unwrap_or(0);
            prop_assert_eq!(t.released(), prefix);
            prop_assert_eq!(t.released_events(), prefix * 2);
        }
    }
}
