//! MySQL / MariaDB source: row-based binlog over the replication protocol, and binlog files.

pub mod charset;
pub mod decoder;
pub mod file;
pub mod reader;
pub mod rows;
pub mod table_map;
