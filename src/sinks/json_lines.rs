//! JSON lines, one Debezium envelope per line, to standard output or an appended file.
//!
//! A batch is acknowledged after it is flushed (stdout) or fsynced (file, when `fsync`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use async_trait::async_trait;

use crate::error::CdcError;
use crate::format::debezium::{EnvelopeContext, write_envelope};
use crate::model::{Batch, now_us};
use crate::pipeline::{Ack, Sink};

enum Target {
    Stdout(std::io::Stdout),
    File { writer: BufWriter<File>, fsync: bool, path: String },
}

pub struct JsonLinesSink {
    target: Target,
    ctx: EnvelopeContext,
    buf: Vec<u8>,
}

impl JsonLinesSink {
    pub fn stdout(name: &str) -> JsonLinesSink {
        JsonLinesSink::new(name, Target::Stdout(std::io::stdout()))
    }

    pub fn file(name: &str, path: &Path, fsync: bool) -> Result<JsonLinesSink, CdcError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| CdcError::definite(format!("cannot create {}: {e}", dir.display()), "check sink.path"))?;
        }
        let f = OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            CdcError::definite(
                format!("cannot open {} for appending: {e}", path.display()),
                "check sink.path and its permissions",
            )
        })?;
        let target =
            Target::File { writer: BufWriter::with_capacity(1 << 16, f), fsync, path: path.display().to_string() };
        Ok(JsonLinesSink::new(name, target))
    }

    fn new(name: &str, target: Target) -> JsonLinesSink {
        JsonLinesSink {
            target,
            ctx: EnvelopeContext { name: name.to_string(), now_us: 0 },
            buf: Vec::with_capacity(1 << 16),
        }
    }
}

#[async_trait]
impl Sink for JsonLinesSink {
    async fn write(&mut self, batch: &Batch, ack: Ack) -> Result<u64, CdcError> {
        self.ctx.now_us = now_us();
        self.buf.clear();
        for event in &batch.events {
            write_envelope(&mut self.buf, event, &self.ctx);
            self.buf.push(b'\n');
        }
        let bytes = self.buf.len() as u64;
        match &mut self.target {
            Target::Stdout(out) => {
                let mut lock = out.lock();
                lock.write_all(&self.buf).and_then(|_| lock.flush()).map_err(|e| {
                    CdcError::definite(
                        format!("cannot write to standard output: {e}"),
                        "check what stdout is connected to",
                    )
                })?;
            }
            Target::File { writer, fsync, path } => {
                let io = |e: std::io::Error| CdcError::transient(format!("cannot write {path}: {e}"));
                writer.write_all(&self.buf).map_err(io)?;
                writer.flush().map_err(io)?;
                if *fsync {
                    writer.get_ref().sync_data().map_err(io)?;
                }
            }
        }
        ack.done();
        Ok(bytes)
    }

    async fn flush(&mut self) -> Result<(), CdcError> {
        // Every write is flushed before it is acknowledged.
        Ok(())
    }
}
