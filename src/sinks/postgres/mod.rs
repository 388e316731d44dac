//! PostgreSQL replica sink: applies the change stream to a PostgreSQL database (12–18) so it
//! stays a copy of the source tables.
//!
//! Each target transaction holds whole source transactions, in source commit order, and ends
//! with the source position written into the positions table (`positions.store = "sink"`):
//! after a crash at any instant the target holds exactly the transactions up to that
//! position, so nothing is lost and nothing is applied twice. A source transaction spread over
//! several batches stays open on the target until its last batch; if the connection drops
//! before that, the pipeline restarts from the stored position (`CdcError::restart`).
//!
//! Statements go out as SQL text with the simple query protocol, one round trip per batch
//! (see `statements.rs` for the batching and `values.rs` for the type mapping).
//!
//! Parallel apply (`apply_connections` > 1): the batches up to a checkpoint form a unit, one
//! target transaction on one connection ("lane"). A unit runs beside the units before it
//! only if their footprints (rows by key, tables written as a whole) do not meet; otherwise
//! it waits for them to commit, or goes on the lane that holds them. Commits stay in source
//! order: a unit's position and COMMIT go out once every unit before it has committed (or
//! sits before it on the same connection), so the positions table still says exactly what
//! the target holds.

mod binary;
mod statements;
mod tables;
pub mod values;

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use rustc_hash::{FxHashMap, FxHashSet};

use self::statements::{OpenCopy, StatementWriter, write_key_tuple};
use self::tables::{Isolation, TablePlan};
use crate::config::{DbSinkConfig, UnreplayableSchemaChange};
use crate::error::CdcError;
use crate::model::{Batch, ChangeEvent, Op, Position, TableId, TableSchema};
use crate::pipeline::{Ack, Sink};
use crate::sinks::footprint::Footprint;
use crate::sinks::row_change::{RowChange, classify};
use crate::sinks::{SourceEngine, batch_tables, lost_transaction, schema_change, unconfirmed_at_flush};
use crate::sources::CheckItem;
use crate::sources::postgres::protocol::{ConnectParams, PgConnection, PgError, ScriptPart, quote_literal};

pub struct PostgresSink {
    name: String,
    params: ConnectParams,
    config: DbSinkConfig,
    /// Positions table when the position is kept in the target (`positions.store = "sink"`).
    positions_table: Option<String>,
    /// Target connections; the first holds the advisory lock. Empty until connected.
    lanes: Vec<Lane>,
    /// Units not yet known to be committed, in source order.
    units: VecDeque<Unit>,
    next_unit: u64,
    /// The schema each target table was made to fit, with how it is written; lanes derive
    /// their own plans (with their own staging tables) from these.
    plans: FxHashMap<TableId, Arc<TablePlan>>,
    /// Staging tables created (for unique names).
    stages: u32,
    /// `ADD PRIMARY KEY` of tables created for an initial copy, run when the copy of that
    /// table is over (or before any other change to it).
    deferred_keys: FxHashMap<TableId, String>,
    /// Source tables whose changes are no longer applied (`cdc_stopped_tables`).
    stopped: FxHashSet<TableId>,
    /// COPY data buffers kept between batches (see `StatementWriter::recycle`).
    spare_buffers: Vec<Vec<u8>>,
    /// The plain COPY the last batch left open, inside a source transaction (see `OpenCopy`).
    open_copy: Option<OpenCopy>,
}

/// Most COPY data held open between batches, per table (the open COPY and each parked one):
/// ~30 000 rows of 200 bytes, and room for a batch of wide rows before the buffer would double
/// to 16 MB.
const OPEN_COPY_MAX_BYTES: usize = 6 << 20;

/// Most events a target transaction takes over checkpoints it passes while catching up.
const GROUP_COMMIT_EVENTS: usize = 10_000;

/// One target connection.
struct Lane {
    conn: PgConnection,
    /// The shared plans as this connection writes them (its own staging tables).
    plans: FxHashMap<TableId, Arc<TablePlan>>,
    /// Scripts sent whose results are not read yet, oldest first.
    in_flight: VecDeque<InFlight>,
}

/// Source transactions applied in one target transaction.
struct Unit {
    seq: u64,
    lane: usize,
    /// Its batches, acknowledged when it commits.
    acks: Vec<Ack>,
    /// What it writes (kept only with several lanes).
    footprint: Footprint,
    state: UnitState,
    /// Events of its batches.
    events: usize,
}

enum UnitState {
    /// Takes more batches.
    Open,
    /// Complete; its position and COMMIT wait for the units before it.
    Complete(Position),
    /// COMMIT sent, not confirmed yet.
    Committing,
}

/// A script sent to the target whose results are not read yet.
struct InFlight {
    parts: usize,
    /// Source tables of its batch, for error messages.
    tables: String,
    /// The unit it commits, if it does.
    commits: Option<u64>,
}

impl PostgresSink {
    pub fn new(name: &str, config: DbSinkConfig, keep_positions: bool) -> PostgresSink {
        let params = ConnectParams::from_url(config.url.url());
        let positions_table = keep_positions.then(|| config.positions_table.clone());
        PostgresSink {
            name: name.to_string(),
            params,
            config,
            positions_table,
            lanes: Vec::new(),
            units: VecDeque::new(),
            next_unit: 0,
            plans: FxHashMap::default(),
            stages: 0,
            deferred_keys: FxHashMap::default(),
            stopped: FxHashSet::default(),
            spare_buffers: Vec::new(),
            open_copy: None,
        }
    }

    fn parallel(&self) -> bool {
        self.config.apply_connections > 1
    }

    /// Connects, fences other instances of this pipeline and prepares the positions table.
    async fn connect(&mut self) -> Result<(), CdcError> {
        if !self.lanes.is_empty() {
            return Ok(());
        }
        let mut conn = self.open_connection().await?;
        if !conn.query_true(&format!("SELECT pg_try_advisory_lock(hashtext({}))", lock_name(&self.name))).await? {
            return Err(CdcError::definite(
                format!(
                    "another cdc instance named `{}` is applying to {}:{}/{}",
                    self.name, self.params.host, self.params.port, self.params.database
                ),
                "stop the other instance (or give this pipeline another name)",
            ));
        }
        if let Some(table) = &self.positions_table {
            conn.query(&positions_table_ddl(table)).await?;
        }
        let stopped = schema_change::stopped_tables_table(&self.config.positions_table);
        conn.query(&format!(
            "CREATE TABLE IF NOT EXISTS {stopped} (name text, source_namespace text, source_table text, \
             reason text NOT NULL, stopped_at timestamptz NOT NULL DEFAULT now(), \
             PRIMARY KEY (name, source_namespace, source_table))"
        ))
        .await?;
        let rows = conn
            .query(&format!(
                "SELECT source_namespace, source_table FROM {stopped} WHERE name = {}",
                quote_literal(&self.name)
            ))
            .await?;
        self.stopped =
            rows.into_iter().filter_map(|r| Some(TableId::new(r.first()?.clone()?, r.get(1)?.clone()?))).collect();
        schema_change::warn_stopped_tables(&self.stopped);
        let mut lanes = vec![Lane::new(conn)];
        for _ in 1..self.config.apply_connections {
            lanes.push(Lane::new(self.open_connection().await?));
        }
        self.lanes = lanes;
        Ok(())
    }

    async fn open_connection(&self) -> Result<PgConnection, CdcError> {
        let mut conn = PgConnection::connect(&self.params, false).await.map_err(|e| target_error(e, &self.params))?;
        // Literals are written for these settings; timestamps with offset +00 are exact in any zone.
        conn.query("SET standard_conforming_strings = on; SET synchronous_commit = on").await?;
        if self.parallel() {
            // Lanes never wait for each other's locks, unless the target has a dependency
            // cdc cannot see (a trigger, say): then fail and restart rather than hang.
            conn.query("SET lock_timeout = '30s'").await?;
        }
        Ok(conn)
    }

    /// Forgets the connections and everything that lived in their open transactions.
    fn reset(&mut self) {
        self.lanes.clear();
        // Their acknowledgements are dropped: read again after the restart.
        self.units.clear();
        // Tables created in a rolled-back transaction are gone: check again.
        self.plans.clear();
        self.deferred_keys.clear();
        self.stopped.clear();
        self.open_copy = None;
    }

    /// After a failure: forget the connections and what their transactions held.
    fn after_error<T>(&mut self, result: Result<T, CdcError>) -> Result<T, CdcError> {
        result.map_err(|e| {
            self.reset();
            lost_transaction(e)
        })
    }

    fn lane(&mut self, lane: usize) -> Result<&mut Lane, CdcError> {
        self.lanes.get_mut(lane).ok_or_else(|| CdcError::transient("not connected to the target"))
    }

    /// The table's plan, when it was made for the schema this event was written under.
    fn plan_for(&self, event: &ChangeEvent) -> Option<&Arc<TablePlan>> {
        self.plans.get(&event.table.id).filter(|p| Arc::ptr_eq(&p.schema, &event.table) || *p.schema == *event.table)
    }

    fn open_unit(&self) -> Option<&Unit> {
        self.units.back().filter(|u| matches!(u.state, UnitState::Open))
    }

    /// Reads the results of the oldest script in flight on `lane`.
    async fn settle_one(&mut self, lane: usize) -> Result<(), CdcError> {
        let Some(flight) = self.lane(lane)?.in_flight.pop_front() else { return Ok(()) };
        if let Err(e) = self.lane(lane)?.conn.read_script_results(flight.parts).await? {
            return Err(apply_error(&e, &flight.tables));
        }
        if let Some(seq) = flight.commits {
            // Commits are sent in source order, so every unit before it is committed too.
            while let Some(unit) = self.units.front() {
                if unit.seq > seq {
                    break;
                }
                if let Some(unit) = self.units.pop_front() {
                    unit.acks.into_iter().for_each(Ack::done);
                }
            }
        }
        Ok(())
    }

    async fn settle_lane(&mut self, lane: usize) -> Result<(), CdcError> {
        while !self.lane(lane)?.in_flight.is_empty() {
            self.settle_one(lane).await?;
        }
        Ok(())
    }

    /// Moves the oldest unit towards its commit: sends its COMMIT once it is complete, or
    /// waits for the COMMIT sent. Returns false when the oldest unit is still open.
    async fn advance(&mut self) -> Result<bool, CdcError> {
        let Some(front) = self.units.front_mut() else { return Ok(false) };
        let (seq, lane) = (front.seq, front.lane);
        match std::mem::replace(&mut front.state, UnitState::Committing) {
            UnitState::Open => {
                front.state = UnitState::Open;
                Ok(false)
            }
            UnitState::Complete(position) => {
                let sql = self.commit_sql(&position);
                let lane_ref = self.lane(lane)?;
                lane_ref.conn.send_script(&[ScriptPart::Sql(sql)]).await?;
                lane_ref.in_flight.push_back(InFlight { parts: 1, tables: String::new(), commits: Some(seq) });
                Ok(true)
            }
            UnitState::Committing => {
                while self.units.front().is_some_and(|u| u.seq == seq) {
                    if self.lane(lane)?.in_flight.is_empty() {
                        return Err(CdcError::definite(
                            "a target transaction was lost track of (parallel apply)",
                            "report this as a bug",
                        ));
                    }
                    self.settle_one(lane).await?;
                }
                Ok(true)
            }
        }
    }

    /// Commits every unit up to `seq`.
    async fn wait_committed(&mut self, seq: u64) -> Result<(), CdcError> {
        while self.units.front().is_some_and(|u| u.seq <= seq) {
            if !self.advance().await? {
                return Err(CdcError::definite(
                    "parallel apply waited for the open transaction",
                    "report this as a bug",
                ));
            }
        }
        Ok(())
    }

    /// Commits every complete unit and reads every result.
    async fn drain(&mut self) -> Result<(), CdcError> {
        while self.advance().await? {}
        for lane in 0..self.lanes.len() {
            self.settle_lane(lane).await?;
        }
        Ok(())
    }

    /// The lane the batch goes to: the open unit's, or a new unit's, after waiting for the
    /// units it must not run beside.
    async fn place(&mut self, batch: &Batch, plain_copy: bool) -> Result<(usize, bool), CdcError> {
        if !self.parallel() {
            let new = self.open_unit().is_none();
            if new {
                self.push_unit(0, Footprint::default());
            }
            return Ok((0, new));
        }
        let footprint = self.footprint(batch, plain_copy)?;
        loop {
            let open = self.open_unit().map(|u| (u.seq, u.lane));
            let mut met_lanes: Vec<usize> = Vec::new();
            let mut met_up_to = None;
            for unit in &self.units {
                if Some(unit.seq) != open.map(|o| o.0) && unit.footprint.meets(&footprint) {
                    met_up_to = Some(unit.seq);
                    if !met_lanes.contains(&unit.lane) {
                        met_lanes.push(unit.lane);
                    }
                }
            }
            // A lane holding a complete unit has its transaction open: it cannot start another.
            let busy: Vec<usize> =
                self.units.iter().filter(|u| matches!(u.state, UnitState::Complete(_))).map(|u| u.lane).collect();
            let chosen = match open {
                Some((_, lane)) => met_lanes.iter().all(|&l| l == lane).then_some(lane),
                None => match met_lanes.as_slice() {
                    [] => (0..self.lanes.len())
                        .filter(|l| !busy.contains(l))
                        .min_by_key(|&l| self.lanes[l].in_flight.len()),
                    [lane] => (!busy.contains(lane)).then_some(*lane),
                    _ => None,
                },
            };
            if let Some(lane) = chosen {
                let new = open.is_none();
                match self.units.back_mut() {
                    Some(unit) if !new => unit.footprint.merge(footprint),
                    _ => self.push_unit(lane, footprint),
                }
                return Ok((lane, new));
            }
            match met_up_to {
                Some(seq) => self.wait_committed(seq).await?,
                // Every lane holds a complete unit: the oldest commits first.
                None => {
                    if !self.advance().await? {
                        return Err(CdcError::definite("parallel apply found no lane", "report this as a bug"));
                    }
                }
            }
        }
    }

    /// Ends a unit's target transaction: its position (when kept here), then COMMIT.
    fn commit_sql(&self, position: &Position) -> String {
        let mut sql = match &self.positions_table {
            Some(table) => position_upsert(table, &self.name, position),
            None => String::new(),
        };
        sql.push_str("COMMIT;\n");
        sql
    }

    fn push_unit(&mut self, lane: usize, footprint: Footprint) {
        self.next_unit += 1;
        self.units.push_back(Unit {
            seq: self.next_unit,
            lane,
            acks: Vec::new(),
            footprint,
            state: UnitState::Open,
            events: 0,
        });
    }

    /// What the batch writes, as parallel apply sees it.
    fn footprint(&self, batch: &Batch, plain_copy: bool) -> Result<Footprint, CdcError> {
        let mut footprint = Footprint::default();
        let mut key = String::new();
        for event in &batch.events {
            let id = &event.table.id;
            if self.stopped.contains(id) {
                continue;
            }
            let Some(plan) = self.plan_for(event) else {
                // Created or altered in this unit.
                footprint.whole_table(id);
                continue;
            };
            let appended = event.op == Op::Read && plain_copy;
            if self.deferred_keys.contains_key(id) && !appended {
                // Gets its primary key in this unit.
                footprint.whole_table(id);
                continue;
            }
            match plan.isolation {
                Isolation::Alone => {
                    footprint.table(id);
                    footprint.alone();
                }
                Isolation::Table => footprint.whole_table(id),
                Isolation::Rows if plan.schema.key.is_empty() => match classify(event)? {
                    // Appends meet nothing; a row found by its values meets the whole table.
                    RowChange::Put { insert: true, .. } => footprint.table(id),
                    _ => footprint.whole_table(id),
                },
                Isolation::Rows => {
                    let rows = match classify(event)? {
                        RowChange::Truncate => {
                            footprint.whole_table(id);
                            continue;
                        }
                        RowChange::Put { row, .. } => [Some(row), None],
                        RowChange::Update { set, old } => [Some(set), Some(old)],
                        RowChange::Delete { old } => [Some(old), None],
                    };
                    for row in rows.into_iter().flatten() {
                        key.clear();
                        // A value the key cannot be written from fails the batch right after.
                        if write_key_tuple(&mut key, plan, row).is_err() {
                            footprint.whole_table(id);
                        }
                        footprint.row(id, &key);
                    }
                }
            }
        }
        if let Some(position) = &batch.checkpoint {
            let progress = position.snapshot_progress();
            for table in self.deferred_keys.keys() {
                if !progress.is_some_and(|p| p.is_reading(table)) {
                    footprint.whole_table(table);
                }
            }
        }
        Ok(footprint)
    }

    /// Writes a batch into its unit's target transaction (and commits the unit with its
    /// position when the batch ends on a checkpoint and nothing before it is uncommitted on
    /// another lane). The script is sent before the previous one's results are read, so the
    /// target works on one batch while the next is prepared. Returns the bytes sent.
    async fn apply(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        self.connect().await?;
        let tables = batch_tables(batch);
        let mut sent = 0;
        // Inserts go in by plain COPY only when none can be a repeat: the position is kept
        // here (nothing applied is read again) and the batch is not streamed again after a
        // resumed snapshot.
        let plain_copy = self.positions_table.is_some() && !batch.may_repeat;
        let (lane, new_unit) = self.place(batch, plain_copy).await?;
        let open_copy = self.open_copy.take();
        let mut writer = StatementWriter::new(plain_copy, std::mem::take(&mut self.spare_buffers), open_copy);
        if new_unit {
            writer.push_sql("BEGIN;\n");
        }
        for event in &batch.events {
            if self.stopped.contains(&event.table.id) {
                continue;
            }
            if self.plan_for(event).is_none() {
                let current = self.plans.get(&event.table.id);
                if let Some(old) = current.map(|p| p.schema.clone())
                    && self.config.unreplayable_schema_change == UnreplayableSchemaChange::StopTable
                    && let Err(refused) = tables::replayable(&old, &event.table, SourceEngine::of(&event.source.meta))
                {
                    // Recorded in the transaction that holds the table's last applied change.
                    schema_change::log_stopped_table(&event.table.id, &refused);
                    writer.push_sql(&format!(
                        "INSERT INTO {} (name, source_namespace, source_table, reason) VALUES ({}, {}, {}, {}) \
                         ON CONFLICT DO NOTHING;\n",
                        schema_change::stopped_tables_table(&self.config.positions_table),
                        quote_literal(&self.name),
                        quote_literal(&event.table.id.namespace),
                        quote_literal(&event.table.id.name),
                        quote_literal(&refused.cause)
                    ));
                    self.stopped.insert(event.table.id.clone());
                    continue;
                }
                // A new table or a schema change: what is written so far was written under the
                // old schema and goes out before the table is created or altered.
                let previous: Option<TableSchema> = current.map(|p| (*p.schema).clone());
                // A key left for after the copy goes on before the table is altered.
                if let Some(sql) = self.deferred_keys.remove(&event.table.id) {
                    writer.push_sql(&format!("{sql};\n"));
                }
                self.settle_lane(lane).await?;
                let script = writer.take_script();
                sent += script_bytes(&script);
                if let Err(e) = self.lane(lane)?.conn.run_script(&script).await? {
                    return Err(apply_error(&e, &tables));
                }
                writer.recycle(script);
                let engine = SourceEngine::of(&event.source.meta);
                self.stages += 1;
                let stage = format!("cdc_stage_{}", self.stages);
                let namespace = self.config.target_namespace(&event.table.id.namespace).to_string();
                let create = self.config.create_tables;
                // Only rows that go in by plain COPY can wait for the key (upserts need it).
                let defer_key = event.op == Op::Read && plain_copy;
                let parallel = self.parallel();
                let conn = &mut self.lane(lane)?.conn;
                let how =
                    tables::Preparation { namespace: &namespace, engine, create, defer_key, stage: &stage, parallel };
                let (plan, deferred_key) = tables::prepare(conn, &event.table, previous.as_ref(), &how).await?;
                let plan = Arc::new(plan);
                self.plans.insert(event.table.id.clone(), plan.clone());
                // The staging table was made on this lane's connection.
                self.lane(lane)?.plans.insert(event.table.id.clone(), plan);
                if let Some(sql) = deferred_key {
                    self.deferred_keys.insert(event.table.id.clone(), sql);
                }
            }
            if (event.op != Op::Read || !plain_copy)
                && let Some(sql) = self.deferred_keys.remove(&event.table.id)
            {
                writer.push_sql(&format!("{sql};\n"));
            }
            // Prepared just above.
            let Some(shared) = self.plans.get(&event.table.id) else { continue };
            let Some(lane_ref) = self.lanes.get_mut(lane) else { continue };
            let plan = match lane_ref.plans.get(&event.table.id) {
                Some(p) if Arc::ptr_eq(&p.schema, &shared.schema) => p,
                _ => {
                    // The table as this connection has not written it yet: its own staging table.
                    self.stages += 1;
                    let plan = Arc::new(shared.with_stage(&format!("cdc_stage_{}", self.stages)));
                    writer.push_sql(&plan.stage_ddl());
                    lane_ref.plans.insert(event.table.id.clone(), plan);
                    &lane_ref.plans[&event.table.id]
                }
            };
            writer.add(event, plan)?;
        }
        // Catching up on one connection: a checkpoint with the next batch already waiting
        // leaves the transaction (and its COPY) open, up to GROUP_COMMIT_EVENTS a transaction.
        // PostgreSQL pays per COPY statement for the rows it buffers (on 17 a resource owner
        // entry per buffered slot, searched linearly): one COPY per 1 000-row source
        // transaction spent a third of the target's CPU there.
        let unit_events = self.units.back().map_or(0, |u| u.events) + batch.events.len();
        let checkpoint = batch
            .checkpoint
            .as_ref()
            .filter(|_| !batch.more_queued || self.parallel() || unit_events >= GROUP_COMMIT_EVENTS);
        if let Some(position) = &batch.checkpoint {
            // Tables whose copy is over get their key in the transaction that holds its end.
            let progress = position.snapshot_progress();
            let done: Vec<TableId> =
                self.deferred_keys.keys().filter(|t| !progress.is_some_and(|p| p.is_reading(t))).cloned().collect();
            for table in done {
                if let Some(sql) = self.deferred_keys.remove(&table) {
                    writer.push_sql(&format!("{sql};\n"));
                }
            }
        }
        let mut commits = None;
        if let Some(position) = checkpoint {
            let unit = self.units.back().map_or(0, |u| u.seq);
            // Safe to commit now if every unit before it is committed or on this connection.
            if self.units.iter().all(|u| u.seq == unit || u.lane == lane) {
                writer.push_sql(&self.commit_sql(position));
                commits = Some(unit);
            }
        }
        let script = if checkpoint.is_none() {
            let (script, open) = writer.take_script_keeping_copy(OPEN_COPY_MAX_BYTES);
            self.open_copy = open;
            script
        } else {
            writer.take_script()
        };
        sent += script_bytes(&script);
        let parts = script.len();
        let lane_ref = self.lane(lane)?;
        if parts > 0 {
            lane_ref.conn.send_script(&script).await?;
            lane_ref.in_flight.push_back(InFlight { parts, tables, commits });
        }
        writer.recycle(script);
        self.spare_buffers = writer.into_spare();
        if let Some(unit) = self.units.back_mut() {
            unit.acks.push(ack);
            unit.events = unit_events;
            if let Some(position) = checkpoint {
                unit.state =
                    if commits.is_some() { UnitState::Committing } else { UnitState::Complete(position.clone()) };
            }
        }
        while self.lane(lane)?.in_flight.len() > 1 {
            self.settle_one(lane).await?;
        }
        // With several lanes, at most one uncommitted unit per lane: past that, wait for the
        // oldest. Each COMMIT goes out as soon as the one before it is confirmed, so a lane
        // never idles waiting for its commit while cdc builds the next script.
        while self.parallel() && self.units.len() >= self.lanes.len() {
            if !self.advance().await? {
                break;
            }
        }
        // The oldest unit may be complete and waiting for nothing now.
        if matches!(self.units.front(), Some(Unit { state: UnitState::Complete(_), .. })) {
            self.advance().await?;
        }
        Ok(sent)
    }
}

impl Lane {
    fn new(conn: PgConnection) -> Lane {
        Lane { conn, plans: FxHashMap::default(), in_flight: VecDeque::new() }
    }
}

fn script_bytes(script: &[ScriptPart]) -> u64 {
    script
        .iter()
        .map(|p| match p {
            ScriptPart::Sql(s) => s.len(),
            ScriptPart::Copy { statement, data } => statement.len() + data.len(),
        })
        .sum::<usize>() as u64
}

#[async_trait]
impl Sink for PostgresSink {
    async fn open(&mut self) -> Result<(), CdcError> {
        let result = self.connect().await;
        self.after_error(result)
    }

    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        let result = self.apply(batch, ack).await;
        self.after_error(result)
    }

    async fn tick(&mut self) -> Result<(), CdcError> {
        let result = self.drain().await;
        self.after_error(result)
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        if let Err(e) = self.drain().await {
            self.reset();
            return unconfirmed_at_flush(e);
        }
        // Everything up to the last checkpoint is committed; a source transaction cut off by
        // shutdown is rolled back and read again on restart (with the rows held for its COPY).
        self.open_copy = None;
        if let Some(unit) = self.units.pop_back()
            && let Some(lane) = self.lanes.get_mut(unit.lane)
        {
            let _ = lane.conn.simple_query("ROLLBACK", |_| Ok(())).await;
        }
        Ok(())
    }
}

/// `cdc check` of a PostgreSQL target: reachable, enough free connections for the apply
/// connections, and allowed to create what `create_tables` needs.
pub async fn check(config: &DbSinkConfig) -> Vec<CheckItem> {
    let params = ConnectParams::from_url(config.url.url());
    let mut conn = match PgConnection::connect(&params, false).await {
        Ok(c) => c,
        Err(e) => return vec![CheckItem::Fail(format!("target: {}", target_error(e, &params)))],
    };
    let mut items = Vec::new();
    let version = conn.query_value("SELECT current_setting('server_version')").await.ok().flatten().unwrap_or_default();
    let tls = crate::sources::postgres::catalog::transport(&mut conn).await;
    items.push(CheckItem::Pass(format!("target: PostgreSQL {version} at {}:{} ({tls})", params.host, params.port)));
    if let Ok(Some(free)) = conn.query_value(crate::sources::postgres::catalog::FREE_CONNECTIONS).await {
        // The check's own connection is one of those counted.
        let free = free.parse::<usize>().unwrap_or(0) + 1;
        let needed = config.apply_connections;
        items.push(if free >= needed {
            CheckItem::Pass(format!("target connections: {free} free (the sink uses {needed})"))
        } else {
            CheckItem::Fail(format!(
                "target connections: {free} free, the sink uses {needed}; remedy: lower sink.apply_connections or raise \
                 max_connections on the target"
            ))
        });
    }
    if config.create_tables {
        let can =
            conn.query_value("SELECT has_database_privilege(current_database(), 'CREATE')::text").await.ok().flatten();
        items.push(if can.as_deref() == Some("true") {
            CheckItem::Pass("target privilege: CREATE on the database (for missing schemas and tables)".into())
        } else {
            CheckItem::Warn(
                "target privilege: no CREATE on the database; cdc can create tables only in existing schemas it \
                 may create in (remedy: GRANT CREATE ON DATABASE … TO the sink's user, or create the tables and set \
                 sink.create_tables = false)"
                    .into(),
            )
        });
    }
    items
}

fn lock_name(name: &str) -> String {
    quote_literal(&format!("cdc.{name}"))
}

pub fn positions_table_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, position text NOT NULL, \
         saved_at timestamptz NOT NULL DEFAULT now())"
    )
}

pub fn position_upsert(table: &str, name: &str, position: &Position) -> String {
    format!(
        "INSERT INTO {table} (name, position, saved_at) VALUES ({}, {}, now()) \
         ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, saved_at = EXCLUDED.saved_at;\n",
        quote_literal(name),
        quote_literal(&position.to_string())
    )
}

/// Connection failures name the target, so they are not mistaken for the source's.
fn target_error(e: CdcError, p: &ConnectParams) -> CdcError {
    let cause = format!("target {}:{}/{}: {}", p.host, p.port, p.database, e.cause);
    if e.is_transient() {
        CdcError::transient(cause)
    } else {
        CdcError::definite(cause, "check sink.url: host, port, user, password and database of the target")
    }
}

/// What the target's refusal of a batch means for the user.
fn apply_error(e: &PgError, tables: &str) -> CdcError {
    let about = match &e.table {
        Some(t) => format!("target table {t}"),
        None => format!("changes of {tables}"),
    };
    let cause = format!("the target refused {about}: {e}");
    let class = e.code.get(..2).unwrap_or("");
    match (class, e.code.as_str()) {
        ("08", _) | (_, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03") => {
            CdcError::transient(cause)
        }
        ("23", _) => CdcError::definite(
            cause,
            "the target table has a constraint the source does not; remove it or fix the row on the target, \
             then restart (nothing after the last applied transaction was applied)",
        ),
        (_, "42P10") => CdcError::definite(
            cause,
            "the target table needs a primary key or unique index on the source table's key columns",
        ),
        (_, "42P01" | "42703") => CdcError::definite(
            cause,
            "the target table or column is missing: create it, or set sink.create_tables = true",
        ),
        ("22", _) => CdcError::definite(cause, "the target column's type cannot hold the value; widen it"),
        ("42", _) => {
            CdcError::definite(cause, "the target table does not match the source; see docs/replica.md for the mapping")
        }
        _ => CdcError::definite(cause, "see the target's message"),
    }
}
