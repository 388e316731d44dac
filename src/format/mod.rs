//! Output encodings of change events.

pub mod connect;
pub mod debezium;
