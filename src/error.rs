//! Errors the runtime acts on: transient ones are retried with backoff, definite ones stop
//! the process with one line naming the cause and the remedy.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth retrying: a dropped connection, a timeout, a broker or database briefly away.
    Transient,
    /// Retrying cannot help: bad config, missing privilege, purged history, incompatible data.
    Definite,
    /// The sink lost changes it had accepted but not yet made durable (a database connection
    /// dropped inside a transaction that spans several batches): the pipeline starts again
    /// from the stored position.
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdcError {
    pub kind: ErrorKind,
    pub cause: String,
    /// What the user should do about it (definite errors).
    pub remedy: Option<String>,
}

impl CdcError {
    pub fn transient(cause: impl Into<String>) -> CdcError {
        CdcError { kind: ErrorKind::Transient, cause: cause.into(), remedy: None }
    }

    pub fn definite(cause: impl Into<String>, remedy: impl Into<String>) -> CdcError {
        CdcError { kind: ErrorKind::Definite, cause: cause.into(), remedy: Some(remedy.into()) }
    }

    pub fn restart(cause: impl Into<String>) -> CdcError {
        CdcError { kind: ErrorKind::Restart, cause: cause.into(), remedy: None }
    }

    pub fn is_restart(&self) -> bool {
        self.kind == ErrorKind::Restart
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

impl fmt::Display for CdcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)?;
        if let Some(remedy) = &self.remedy {
            write!(f, "; remedy: {remedy}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CdcError {}

pub type Result<T, E = CdcError> = std::result::Result<T, E>;
