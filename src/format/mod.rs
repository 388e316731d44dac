//! Output encodings of change events.

pub mod avro;
pub mod connect;
pub mod debezium;
