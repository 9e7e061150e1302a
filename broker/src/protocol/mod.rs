//! The NATS client protocol as pure values: parsing what clients send, encoding what the
//! server sends, and the exact `-ERR` texts. No I/O happens here; the connection code feeds
//! bytes in and writes bytes out.

pub mod client_parser;
pub mod errors;
pub mod info;
pub mod route_parser;
pub mod server_operations;

pub use client_parser::{parse_client_operation, ClientOperation, Parsed, ParserLimits, Publish};
pub use errors::ProtocolError;
pub use info::{ConnectOptions, ServerInfo};
