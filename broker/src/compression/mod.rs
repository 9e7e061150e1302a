//! Stream compression for peer connections.
//!
//! nats-server 2.10+ compresses route and leafnode connections with the S2 stream format once
//! both sides agree on a mode (reference §2.10, §4.7). This module is pure: the codec (bytes in,
//! bytes out, no I/O; the connection code feeds it what it reads and writes what it appends)
//! and how two servers agree on a mode ([`mode`]).
//! [`S2Decoder`] and [`S2Encoder`] document their contracts in [`s2`].

mod block_decode;
mod block_encode;
mod crc32c;
pub mod mode;
pub mod s2;

pub use mode::{CompressionMode, Negotiated};
pub use s2::{Decoded, S2Decoder, S2Encoder, S2Error, S2Level};
