//! MySQL / MariaDB source: row-based binlog over the replication protocol, and binlog files.

pub mod charset;
pub mod ddl;
pub mod decoder;
pub mod file;
pub mod json_diff;
pub mod rows;
pub mod schema_history;
pub mod server;
pub mod snapshot;
mod source;
pub mod table_map;

pub use source::MySqlSource;
