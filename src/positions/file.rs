//! A position kept in one small JSON file, replaced atomically.
//!
//! Each save writes `<path>.tmp`, fsyncs it, renames it over `<path>` and fsyncs the
//! directory, so a kill -9 at any instant leaves either the old or the new file, whole.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{PositionRecord, PositionStore, needs_write};
use crate::error::CdcError;
use crate::model::Position;
use async_trait::async_trait;

pub struct FilePositionStore {
    path: PathBuf,
    name: String,
    /// Last position written or read, to refuse moving backward without re-reading the file.
    last: Mutex<Option<Position>>,
}

impl FilePositionStore {
    pub fn new(path: impl Into<PathBuf>, name: impl Into<String>) -> FilePositionStore {
        FilePositionStore { path: path.into(), name: name.into(), last: Mutex::new(None) }
    }

    /// Reads the stored position synchronously (also used by `positions show`).
    pub fn read(path: &Path) -> Result<Option<(Position, i64, String)>, CdcError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CdcError::definite(
                    format!("cannot read position file {}: {e}", path.display()),
                    "check the file's permissions or positions.path",
                ));
            }
        };
        let stored = PositionRecord::decode(text.as_bytes(), &format!("position file {}", path.display()))?;
        Ok(Some((stored.position, stored.saved_at_ms, stored.name)))
    }

    fn write(&self, position: &Position) -> Result<(), CdcError> {
        let io_err = |what: &str, e: std::io::Error| {
            CdcError::transient(format!("cannot {what} position file {}: {e}", self.path.display()))
        };
        let bytes = PositionRecord::encode(&self.name, position);
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create the directory of the", e))?;
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("create temporary", e))?;
        f.write_all(&bytes).map_err(|e| io_err("write temporary", e))?;
        f.sync_all().map_err(|e| io_err("fsync temporary", e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(|e| io_err("rename over the", e))?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| io_err("fsync the directory of the", e))?;
        Ok(())
    }

    fn current(&self) -> Result<Option<Position>, CdcError> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none() {
            *last = Self::read(&self.path)?.map(|(p, _, _)| p);
        }
        Ok(last.clone())
    }

    fn remember(&self, position: &Position) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(position.clone());
    }
}

#[async_trait]
impl PositionStore for FilePositionStore {
    async fn load(&self) -> Result<Option<Position>, CdcError> {
        let found = Self::read(&self.path)?.map(|(p, _, _)| p);
        if let Some(p) = &found {
            self.remember(p);
        }
        Ok(found)
    }

    async fn save(&self, position: &Position) -> Result<bool, CdcError> {
        let stored = self.current()?;
        let remedy = || {
            format!(
                "the position file {} belongs to another source; point positions.path elsewhere or reset it with --from",
                self.path.display()
            )
        };
        if let Some(written) = needs_write(stored.as_ref(), position, remedy)? {
            return Ok(written);
        }
        // A small write and two fsyncs, once per checkpoint interval: cheap enough inline.
        self.write(position)?;
        self.remember(position);
        Ok(true)
    }

    async fn reset(&self, position: &Position) -> Result<(), CdcError> {
        // A small write and two fsyncs, once per checkpoint interval: cheap enough inline.
        self.write(position)?;
        self.remember(position);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}
