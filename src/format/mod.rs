//! Output encodings of change events.

pub mod debezium;
