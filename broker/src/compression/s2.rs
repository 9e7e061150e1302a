//! The S2 stream format (github.com/klauspost/compress/s2 `Reader`/`Writer`), which
//! nats-server 2.10+ speaks on compressed route and leafnode connections.
//!
//! A stream is a sequence of chunks, each a one-byte type, a three-byte little-endian length
//! and a body:
//! - `0xff` stream identifier, body `S2sTwO` (or Snappy's `sNaPpY`); must come first and may
//!   be repeated;
//! - `0x00` compressed data: masked CRC-32C of the uncompressed bytes, then one S2 block;
//! - `0x01` uncompressed data: masked CRC-32C, then the bytes;
//! - `0x02`–`0x7f` reserved, unskippable: an error;
//! - `0x80`–`0xfe` skippable (padding `0xfe`, the S2 seek index `0x99`): ignored.
//!
//! Limits: a data chunk carries at most [`MAX_BLOCK_SIZE`] (4 MiB) uncompressed bytes, or
//! 64 KiB after a Snappy identifier; a compressed chunk body may be at most the worst-case
//! encoding of a maximal block plus its checksum. Anything larger is an error, as is a bad
//! checksum or a malformed block. Errors are final: the decoder keeps returning the first one.
//!
//! [`S2Decoder`] is incremental: [`S2Decoder::push`] buffers received bytes and
//! [`S2Decoder::decode`] appends the contents of at most one data chunk per call, so output
//! grows by at most one block between two looks by the caller. "Need more input" is the value
//! [`Decoded::NeedInput`], never an error. The decoder buffers at most one chunk plus one
//! push.
//!
//! [`S2Encoder`] appends chunks to a `BytesMut`: the stream identifier before the first
//! chunk, then for every block whichever of the compressed and uncompressed chunk is smaller.
//! [`S2Encoder::write`] buffers up to one block; [`S2Encoder::flush`] ends the batch.

use bytes::{Buf, BufMut, BytesMut};
use thiserror::Error;

use super::block_decode::{decode_elements, decoded_length};
use super::block_encode::{BlockEncoder, MatchEffort};
use super::crc32c::masked_crc32c;

/// The most uncompressed bytes one chunk may carry.
pub const MAX_BLOCK_SIZE: usize = 4 << 20;
/// The smallest block size an encoder accepts (as the Go writer).
pub const MIN_BLOCK_SIZE: usize = 4 << 10;
/// The Go writer's default block size.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;
/// The most uncompressed bytes a chunk may carry in a Snappy-framed stream.
pub const MAX_SNAPPY_BLOCK_SIZE: usize = 1 << 16;

const CHUNK_HEADER_LENGTH: usize = 4;
const CHECKSUM_LENGTH: usize = 4;
const IDENTIFIER_LENGTH: usize = 6;
const S2_IDENTIFIER: &[u8; IDENTIFIER_LENGTH] = b"S2sTwO";
const SNAPPY_IDENTIFIER: &[u8; IDENTIFIER_LENGTH] = b"sNaPpY";
const S2_IDENTIFIER_CHUNK: &[u8] = b"\xff\x06\x00\x00S2sTwO";

const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_STREAM_IDENTIFIER: u8 = 0xff;
const LAST_UNSKIPPABLE_CHUNK: u8 = 0x7f;

/// How many undecoded bytes a push may add on top of one maximal chunk.
const PUSH_ALLOWANCE: usize = 1 << 20;

/// Everything that can go wrong reading an S2 stream or configuring a codec.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum S2Error {
    #[error("S2 stream starts with chunk type {chunk_type:#04x}, not a stream identifier")]
    MissingStreamIdentifier { chunk_type: u8 },
    #[error("S2 stream identifier chunk has length {length}, expected 6")]
    StreamIdentifierLength { length: usize },
    #[error("unknown S2 stream identifier {found:?}")]
    UnknownStreamIdentifier { found: [u8; IDENTIFIER_LENGTH] },
    #[error("reserved unskippable S2 chunk type {chunk_type:#04x}")]
    UnskippableChunk { chunk_type: u8 },
    #[error("S2 data chunk of {length} bytes is too short for its checksum")]
    ChunkTooShort { length: usize },
    #[error("S2 chunk of type {chunk_type:#04x} has {length} bytes, the limit is {limit}")]
    ChunkTooLarge {
        chunk_type: u8,
        length: usize,
        limit: usize,
    },
    #[error("S2 block holds {length} bytes, the limit is {limit}")]
    BlockTooLarge { length: usize, limit: usize },
    #[error("malformed S2 block at element byte {position}: {reason}")]
    MalformedBlock {
        reason: &'static str,
        position: usize,
    },
    #[error("S2 checksum mismatch: chunk says {expected:#010x}, data gives {actual:#010x}")]
    ChecksumMismatch { expected: u32, actual: u32 },
    #[error("S2 stream ends inside a chunk ({buffered} bytes held, {missing_skipped} to skip)")]
    TruncatedStream {
        buffered: usize,
        missing_skipped: usize,
    },
    #[error("{buffered} undecoded S2 bytes would exceed the limit of {limit}; decode first")]
    InputOverflow { buffered: usize, limit: usize },
    #[error("S2 block size {block_size} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}")]
    InvalidBlockSize { block_size: usize },
}

/// What one call to [`S2Decoder::decode`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// This many bytes (at least one) were appended to the output.
    Produced(usize),
    /// Every complete chunk has been consumed; push more input.
    NeedInput,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum StreamState {
    AwaitingIdentifier,
    Open { snappy_framed: bool },
    Failed(S2Error),
}

/// Incremental S2 stream decoder; see the module documentation for its contract.
#[derive(Debug)]
pub struct S2Decoder {
    input: BytesMut,
    state: StreamState,
    /// Bytes of a skippable chunk still to discard as they arrive.
    skip_remaining: usize,
    max_block_size: usize,
}

impl Default for S2Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl S2Decoder {
    /// A decoder accepting blocks up to [`MAX_BLOCK_SIZE`].
    pub fn new() -> Self {
        Self {
            input: BytesMut::new(),
            state: StreamState::AwaitingIdentifier,
            skip_remaining: 0,
            max_block_size: MAX_BLOCK_SIZE,
        }
    }

    /// A decoder rejecting blocks larger than `max_block_size` (1 ..= 4 MiB), which bounds
    /// its memory when the peer is known to use smaller blocks.
    pub fn with_max_block_size(max_block_size: usize) -> Result<Self, S2Error> {
        if max_block_size == 0 || max_block_size > MAX_BLOCK_SIZE {
            return Err(S2Error::InvalidBlockSize {
                block_size: max_block_size,
            });
        }
        Ok(Self {
            max_block_size,
            ..Self::new()
        })
    }

    /// The most undecoded bytes this decoder holds: one maximal chunk plus one push.
    pub fn input_limit(&self) -> usize {
        CHUNK_HEADER_LENGTH + max_compressed_chunk_length(self.max_block_size) + PUSH_ALLOWANCE
    }

    /// Undecoded bytes currently held.
    pub fn buffered_len(&self) -> usize {
        self.input.len()
    }

    /// Buffers received bytes. Call [`S2Decoder::decode`] until it returns
    /// [`Decoded::NeedInput`] before pushing again; then any push of up to 1 MiB succeeds.
    pub fn push(&mut self, compressed: &[u8]) -> Result<(), S2Error> {
        if let StreamState::Failed(error) = &self.state {
            return Err(error.clone());
        }
        let discarded = self.skip_remaining.min(compressed.len());
        self.skip_remaining -= discarded;
        let compressed = &compressed[discarded..];
        let buffered = self.input.len() + compressed.len();
        let limit = self.input_limit();
        if buffered > limit {
            return Err(self.fail(S2Error::InputOverflow { buffered, limit }));
        }
        self.input.extend_from_slice(compressed);
        Ok(())
    }

    /// Checks that the stream ended on a chunk boundary, for when the peer closes.
    pub fn finish(&self) -> Result<(), S2Error> {
        if let StreamState::Failed(error) = &self.state {
            return Err(error.clone());
        }
        if self.input.is_empty() && self.skip_remaining == 0 {
            return Ok(());
        }
        Err(S2Error::TruncatedStream {
            buffered: self.input.len(),
            missing_skipped: self.skip_remaining,
        })
    }

    /// Appends the contents of the next non-empty data chunk to `output`, skipping any other
    /// chunks before it.
    pub fn decode(&mut self, output: &mut BytesMut) -> Result<Decoded, S2Error> {
        loop {
            let snappy_framed = match &self.state {
                StreamState::Failed(error) => return Err(error.clone()),
                StreamState::AwaitingIdentifier => None,
                StreamState::Open { snappy_framed } => Some(*snappy_framed),
            };
            if self.skip_remaining > 0 {
                let discarded = self.skip_remaining.min(self.input.len());
                self.input.advance(discarded);
                self.skip_remaining -= discarded;
                if self.skip_remaining > 0 {
                    return Ok(Decoded::NeedInput);
                }
            }
            let Some(header) = self.input.get(..CHUNK_HEADER_LENGTH) else {
                return Ok(Decoded::NeedInput);
            };
            let chunk_type = header[0];
            let length = usize::from(header[1])
                | (usize::from(header[2]) << 8)
                | (usize::from(header[3]) << 16);
            let step = match (snappy_framed, chunk_type) {
                (_, CHUNK_STREAM_IDENTIFIER) => self.read_identifier(length),
                (None, _) => Err(S2Error::MissingStreamIdentifier { chunk_type }),
                (Some(snappy_framed), CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED) => {
                    self.read_data(chunk_type, length, snappy_framed, output)
                }
                (Some(_), ..=LAST_UNSKIPPABLE_CHUNK) => {
                    Err(S2Error::UnskippableChunk { chunk_type })
                }
                (Some(_), _) => {
                    self.input.advance(CHUNK_HEADER_LENGTH);
                    self.skip_remaining = length;
                    Ok(Step::Continue)
                }
            };
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Produced(produced)) => return Ok(Decoded::Produced(produced)),
                Ok(Step::NeedInput) => return Ok(Decoded::NeedInput),
                Err(error) => return Err(self.fail(error)),
            }
        }
    }

    fn fail(&mut self, error: S2Error) -> S2Error {
        self.input = BytesMut::new();
        self.state = StreamState::Failed(error.clone());
        error
    }

    fn read_identifier(&mut self, length: usize) -> Result<Step, S2Error> {
        if length != IDENTIFIER_LENGTH {
            return Err(S2Error::StreamIdentifierLength { length });
        }
        let Some(body) = self
            .input
            .get(CHUNK_HEADER_LENGTH..CHUNK_HEADER_LENGTH + IDENTIFIER_LENGTH)
        else {
            return Ok(Step::NeedInput);
        };
        let snappy_framed = if body == S2_IDENTIFIER {
            false
        } else if body == SNAPPY_IDENTIFIER {
            true
        } else {
            let mut found = [0u8; IDENTIFIER_LENGTH];
            found.copy_from_slice(body);
            return Err(S2Error::UnknownStreamIdentifier { found });
        };
        self.state = StreamState::Open { snappy_framed };
        self.input.advance(CHUNK_HEADER_LENGTH + IDENTIFIER_LENGTH);
        Ok(Step::Continue)
    }

    fn read_data(
        &mut self,
        chunk_type: u8,
        length: usize,
        snappy_framed: bool,
        output: &mut BytesMut,
    ) -> Result<Step, S2Error> {
        let block_limit = if snappy_framed {
            self.max_block_size.min(MAX_SNAPPY_BLOCK_SIZE)
        } else {
            self.max_block_size
        };
        if length < CHECKSUM_LENGTH {
            return Err(S2Error::ChunkTooShort { length });
        }
        // As the Go reader: a compressed chunk is bounded by the worst case of the largest
        // block even in Snappy framing, since a valid block may use long encodings.
        let chunk_limit = if chunk_type == CHUNK_COMPRESSED {
            max_compressed_chunk_length(self.max_block_size)
        } else {
            CHECKSUM_LENGTH + block_limit
        };
        if length > chunk_limit {
            return Err(S2Error::ChunkTooLarge {
                chunk_type,
                length,
                limit: chunk_limit,
            });
        }
        let Some(body) = self
            .input
            .get(CHUNK_HEADER_LENGTH..CHUNK_HEADER_LENGTH + length)
        else {
            return Ok(Step::NeedInput);
        };
        let expected = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let payload = &body[CHECKSUM_LENGTH..];
        let start = output.len();
        if chunk_type == CHUNK_COMPRESSED {
            let (decoded, header_length) = decoded_length(payload)?;
            if decoded > block_limit {
                return Err(S2Error::BlockTooLarge {
                    length: decoded,
                    limit: block_limit,
                });
            }
            output.resize(start + decoded, 0);
            if let Err(error) = decode_elements(&payload[header_length..], &mut output[start..]) {
                output.truncate(start);
                return Err(error);
            }
        } else {
            output.extend_from_slice(payload);
        }
        let actual = masked_crc32c(&output[start..]);
        if actual != expected {
            output.truncate(start);
            return Err(S2Error::ChecksumMismatch { expected, actual });
        }
        self.input.advance(CHUNK_HEADER_LENGTH + length);
        let produced = output.len() - start;
        Ok(if produced == 0 {
            Step::Continue
        } else {
            Step::Produced(produced)
        })
    }
}

enum Step {
    Continue,
    Produced(usize),
    NeedInput,
}

/// The longest compressed chunk body for a block of `block_size` bytes: its checksum plus the
/// Go writer's `MaxEncodedLen` bound (length varint and all bytes as one literal), so this
/// decoder accepts exactly the chunks the Go reader accepts.
fn max_compressed_chunk_length(block_size: usize) -> usize {
    let varint_length = (usize::BITS - block_size.leading_zeros() + 7) as usize / 7;
    let literal_header_length = match block_size {
        0 => 0,
        1..=59 => 1,
        60..=255 => 2,
        256..=65_535 => 3,
        65_536..=16_777_215 => 4,
        _ => 5,
    };
    CHECKSUM_LENGTH + varint_length + literal_header_length + block_size
}

/// How an [`S2Encoder`] trades CPU for size, matching nats-server's compression modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S2Level {
    /// Only uncompressed chunks (`s2_uncompressed`): framing and checksums, no matching.
    Uncompressed,
    /// A greedy single-table match finder (`s2_fast`).
    Fast,
    /// Two tables, longer matches (`s2_better`, and the closest we offer to `s2_best`).
    Better,
}

/// Incremental S2 stream encoder; see the module documentation for its contract.
#[derive(Debug)]
pub struct S2Encoder {
    level: S2Level,
    block_size: usize,
    pending: Vec<u8>,
    identifier_written: bool,
    block_encoder: BlockEncoder,
}

impl S2Encoder {
    /// An encoder with the Go writer's default block size of 1 MiB.
    pub fn new(level: S2Level) -> Self {
        Self {
            level,
            block_size: DEFAULT_BLOCK_SIZE,
            pending: Vec::new(),
            identifier_written: false,
            block_encoder: BlockEncoder::default(),
        }
    }

    /// An encoder cutting blocks of `block_size` bytes (4 KiB ..= 4 MiB).
    pub fn with_block_size(level: S2Level, block_size: usize) -> Result<Self, S2Error> {
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(S2Error::InvalidBlockSize { block_size });
        }
        Ok(Self {
            block_size,
            ..Self::new(level)
        })
    }

    /// The level blocks are encoded at.
    pub fn level(&self) -> S2Level {
        self.level
    }

    /// Encodes the following blocks at `level` (the stream format does not record it, so a
    /// reader needs no notice).
    pub fn set_level(&mut self, level: S2Level) {
        self.level = level;
    }

    /// Bytes written but not yet emitted (less than one block).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes `input`, appending a chunk to `output` for every block it completes.
    pub fn write(&mut self, mut input: &[u8], output: &mut BytesMut) {
        while !input.is_empty() {
            if self.pending.is_empty() && input.len() >= self.block_size {
                let (block, rest) = input.split_at(self.block_size);
                self.emit_chunk(block, output);
                input = rest;
                continue;
            }
            let taken = (self.block_size - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..taken]);
            input = &input[taken..];
            if self.pending.len() == self.block_size {
                self.emit_pending(output);
            }
        }
    }

    /// Appends whatever is pending as a final chunk of this batch (nothing when empty).
    pub fn flush(&mut self, output: &mut BytesMut) {
        if !self.pending.is_empty() {
            self.emit_pending(output);
        }
    }

    fn emit_pending(&mut self, output: &mut BytesMut) {
        let pending = std::mem::take(&mut self.pending);
        self.emit_chunk(&pending, output);
        self.pending = pending;
        self.pending.clear();
    }

    fn emit_chunk(&mut self, block: &[u8], output: &mut BytesMut) {
        if !self.identifier_written {
            output.extend_from_slice(S2_IDENTIFIER_CHUNK);
            self.identifier_written = true;
        }
        let checksum = masked_crc32c(block);
        let chunk_start = output.len();
        output.put_slice(&[CHUNK_COMPRESSED, 0, 0, 0]);
        output.put_u32_le(checksum);
        let effort = match self.level {
            S2Level::Uncompressed => None,
            S2Level::Fast => Some(MatchEffort::Fast),
            S2Level::Better => Some(MatchEffort::Better),
        };
        let compressed =
            effort.is_some_and(|effort| self.block_encoder.encode(effort, block, output));
        if compressed {
            let length = output.len() - chunk_start - CHUNK_HEADER_LENGTH;
            write_chunk_length(&mut output[chunk_start..], length);
        } else {
            output.truncate(chunk_start + CHUNK_HEADER_LENGTH + CHECKSUM_LENGTH);
            output[chunk_start] = CHUNK_UNCOMPRESSED;
            write_chunk_length(&mut output[chunk_start..], CHECKSUM_LENGTH + block.len());
            output.extend_from_slice(block);
        }
    }
}

/// Stores a chunk body length (below 16 MiB by construction) in bytes 1..4 of its header.
fn write_chunk_length(header: &mut [u8], length: usize) {
    header[1..4].copy_from_slice(&length.to_le_bytes()[..3]);
}

#[cfg(test)]
#[path = "s2_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "s2_vector_tests.rs"]
mod vector_tests;
