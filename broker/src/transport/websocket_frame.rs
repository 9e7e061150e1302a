//! WebSocket frames (RFC 6455) with permessage-deflate (RFC 7692), as a pure codec: bytes in,
//! messages out, and messages in, bytes out. No I/O here.
//!
//! Contract of [`FrameDecoder`]: the caller appends what it read to [`FrameDecoder::buffer`]
//! and calls [`FrameDecoder::decode`] until it returns `Ok(None)` (more bytes needed).
//! - Data (binary or text) messages come out whole, fragments joined; with compression agreed,
//!   a message whose first frame has RSV1 set is inflated (no context takeover: each message
//!   on its own).
//! - Ping, pong and close frames come out between messages as they arrive.
//! - A message larger than the bound (before or after inflating), a frame with RSV2/RSV3, RSV1
//!   without compression or on a continuation or control frame, an unknown opcode, a control
//!   frame that is fragmented or over 125 bytes, a continuation without a message or a new
//!   message inside one, a masked frame to a client, or an unmasked frame to a server that did
//!   not agree to `Nats-No-Masking` is an error carrying the close code to answer with (1002
//!   protocol error, 1009 too big, 1007 bad compressed data).
//!
//! Contract of [`encode_frame`] and [`Compressor`]: one frame per call, final, masked when the
//! writer is a client; [`Compressor::compress`] deflates one message (a fresh stream each
//! time) and drops the `00 00 ff ff` tail RFC 7692 leaves out.

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0 => Self::Continuation,
            1 => Self::Text,
            2 => Self::Binary,
            8 => Self::Close,
            9 => Self::Ping,
            10 => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0,
            Self::Text => 1,
            Self::Binary => 2,
            Self::Close => 8,
            Self::Ping => 9,
            Self::Pong => 10,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// Close status codes this codec uses.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// A frame or message the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A whole binary or text message, inflated when it was compressed.
    Data(Bytes),
    Ping(Bytes),
    Pong,
    /// The peer closes; the code when it sent one.
    Close(Option<u16>),
}

/// Why the peer's bytes are not acceptable, with the close code to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("websocket: {reason} (close {code})")]
pub struct FrameError {
    pub code: u16,
    pub reason: &'static str,
}

fn protocol_error(reason: &'static str) -> FrameError {
    FrameError {
        code: close_code::PROTOCOL_ERROR,
        reason,
    }
}

fn too_big() -> FrameError {
    FrameError {
        code: close_code::MESSAGE_TOO_BIG,
        reason: "message larger than the limit",
    }
}

/// What the decoder accepts.
#[derive(Debug, Clone, Copy)]
pub struct DecoderSettings {
    pub role: Role,
    /// A server accepts unmasked frames (`Nats-No-Masking` was agreed).
    pub accept_unmasked: bool,
    /// permessage-deflate was agreed.
    pub compression: bool,
    /// The largest message, before and after inflating.
    pub max_message_size: usize,
}

/// The message being put together from fragments.
#[derive(Debug)]
struct Partial {
    compressed: bool,
    payload: BytesMut,
}

/// Frames in, messages out (see the module docs).
#[derive(Debug)]
pub struct FrameDecoder {
    settings: DecoderSettings,
    buffer: BytesMut,
    partial: Option<Partial>,
}

/// The fixed part of a frame header, parsed.
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    length: usize,
    header_length: usize,
}

impl FrameDecoder {
    pub fn new(settings: DecoderSettings) -> Self {
        Self {
            settings,
            buffer: BytesMut::with_capacity(16 * 1024),
            partial: None,
        }
    }

    /// Where the caller puts the bytes it read.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buffer
    }

    /// The next complete message or control frame; `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self) -> Result<Option<Incoming>, FrameError> {
        loop {
            let Some(header) = self.header()? else {
                return Ok(None);
            };
            if self.buffer.len() < header.header_length + header.length {
                let needed = header.header_length + header.length - self.buffer.len();
                self.buffer.reserve(needed);
                return Ok(None);
            }
            self.buffer.advance(header.header_length);
            let mut payload = self.buffer.split_to(header.length);
            if let Some(mask) = header.mask {
                apply_mask(&mut payload, mask);
            }
            if header.opcode.is_control() {
                return Ok(Some(control(header.opcode, payload.freeze())?));
            }
            let partial = match (header.opcode, self.partial.take()) {
                (Opcode::Continuation, None) => {
                    return Err(protocol_error("continuation frame without a message"))
                }
                (Opcode::Continuation, Some(mut partial)) => {
                    if header.rsv1 {
                        return Err(protocol_error("compression bit on a continuation frame"));
                    }
                    partial.payload.extend_from_slice(&payload);
                    partial
                }
                (_, Some(_)) => return Err(protocol_error("new message inside a fragmented one")),
                (_, None) => Partial {
                    compressed: header.rsv1,
                    payload,
                },
            };
            if partial.payload.len() > self.settings.max_message_size {
                return Err(too_big());
            }
            if !header.fin {
                self.partial = Some(partial);
                continue;
            }
            let message = if partial.compressed {
                inflate(&partial.payload, self.settings.max_message_size)?
            } else {
                partial.payload.freeze()
            };
            return Ok(Some(Incoming::Data(message)));
        }
    }

    /// Parses the header at the front of the buffer, if it is all there.
    fn header(&self) -> Result<Option<Header>, FrameError> {
        let bytes = &self.buffer[..];
        if bytes.len() < 2 {
            return Ok(None);
        }
        let (first, second) = (bytes[0], bytes[1]);
        let fin = first & 0x80 != 0;
        let rsv1 = first & 0x40 != 0;
        if first & 0x30 != 0 {
            return Err(protocol_error("reserved bits RSV2/RSV3 set"));
        }
        let opcode = Opcode::from_bits(first & 0x0f).ok_or(protocol_error("unknown opcode"))?;
        if rsv1 && (!self.settings.compression || opcode.is_control()) {
            return Err(protocol_error(
                "compression bit set without permessage-deflate",
            ));
        }
        let masked = second & 0x80 != 0;
        match (self.settings.role, masked) {
            (Role::Server, false) if !self.settings.accept_unmasked => {
                return Err(protocol_error("unmasked frame from a client"))
            }
            (Role::Client, true) => return Err(protocol_error("masked frame from a server")),
            _ => {}
        }
        let (length, mut header_length) = match second & 0x7f {
            126 => {
                let Some(extended) = bytes.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([extended[0], extended[1]])), 4)
            }
            127 => {
                let Some(extended) = bytes.get(2..10) else {
                    return Ok(None);
                };
                let mut length = [0u8; 8];
                length.copy_from_slice(extended);
                (u64::from_be_bytes(length), 10)
            }
            short => (u64::from(short), 2),
        };
        if opcode.is_control() && (!fin || length > 125) {
            return Err(protocol_error("control frame fragmented or over 125 bytes"));
        }
        let length = usize::try_from(length).map_err(|_| too_big())?;
        if length > self.settings.max_message_size {
            return Err(too_big());
        }
        let mask = if masked {
            let Some(key) = bytes.get(header_length..header_length + 4) else {
                return Ok(None);
            };
            header_length += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        Ok(Some(Header {
            fin,
            rsv1,
            opcode,
            mask,
            length,
            header_length,
        }))
    }
}

fn control(opcode: Opcode, payload: Bytes) -> Result<Incoming, FrameError> {
    Ok(match opcode {
        Opcode::Ping => Incoming::Ping(payload),
        Opcode::Pong => Incoming::Pong,
        _ => match payload.len() {
            0 => Incoming::Close(None),
            1 => return Err(protocol_error("close frame with a one-byte payload")),
            _ => Incoming::Close(Some(u16::from_be_bytes([payload[0], payload[1]]))),
        },
    })
}

fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (index, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[index % 4];
    }
}

/// The tail every deflated message lacks on the wire (RFC 7692 §7.2.1).
const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Inflates one message, bounded by `limit` bytes of output.
fn inflate(compressed: &[u8], limit: usize) -> Result<Bytes, FrameError> {
    let invalid = FrameError {
        code: close_code::INVALID_PAYLOAD,
        reason: "compressed message does not inflate",
    };
    let mut decompress = Decompress::new(false);
    let total = compressed.len() + DEFLATE_TAIL.len();
    // The message, then the tail, without copying them together.
    let input_from = |read: usize| match compressed.get(read..) {
        Some(rest) if !rest.is_empty() => rest,
        _ => DEFLATE_TAIL
            .get(read.saturating_sub(compressed.len())..)
            .unwrap_or_default(),
    };
    let mut output = Vec::with_capacity((compressed.len() * 4).clamp(64, limit.max(64)));
    loop {
        if output.len() == output.capacity() {
            // Room for one byte over the limit, so that going over it shows.
            let room = (limit + 1).saturating_sub(output.len());
            if room == 0 {
                return Err(too_big());
            }
            output.reserve(output.len().max(1024).min(room));
        }
        let consumed = usize::try_from(decompress.total_in()).unwrap_or(usize::MAX);
        let produced = decompress.total_out();
        let status = decompress
            .decompress_vec(input_from(consumed), &mut output, FlushDecompress::Sync)
            .map_err(|_| invalid.clone())?;
        if output.len() > limit {
            return Err(too_big());
        }
        let read_now = usize::try_from(decompress.total_in()).unwrap_or(usize::MAX);
        let stalled = read_now == consumed
            && decompress.total_out() == produced
            && output.len() < output.capacity();
        if status == Status::StreamEnd || (stalled && read_now >= total) {
            break;
        }
        if stalled {
            // Input left, room for output, and no progress: the stream is broken.
            return Err(invalid);
        }
    }
    Ok(Bytes::from(output))
}

/// Deflates outgoing messages (permessage-deflate, no context takeover).
#[derive(Debug)]
pub struct Compressor {
    compress: Compress,
}

impl Default for Compressor {
    fn default() -> Self {
        Self {
            compress: Compress::new(Compression::fast(), false),
        }
    }
}

impl Compressor {
    /// One message deflated on its own, without the `00 00 ff ff` tail.
    pub fn compress(&mut self, message: &[u8], output: &mut Vec<u8>) {
        self.compress.reset();
        output.clear();
        output.reserve(message.len() / 2 + 64);
        loop {
            let consumed = usize::try_from(self.compress.total_in()).unwrap_or(usize::MAX);
            let produced = self.compress.total_out();
            let input = message.get(consumed..).unwrap_or_default();
            if output.len() == output.capacity() {
                output.reserve(output.len().max(64));
            }
            // Compressing into memory fails only on a bug in the codec; the message then goes
            // out in stored blocks (a valid deflate stream of its own) rather than lost.
            if self
                .compress
                .compress_vec(input, output, FlushCompress::Sync)
                .is_err()
            {
                stored(message, output);
                return;
            }
            let room_left = output.len() < output.capacity();
            let all_read =
                usize::try_from(self.compress.total_in()).unwrap_or(usize::MAX) >= message.len();
            if all_read && room_left && output.ends_with(&DEFLATE_TAIL) {
                break;
            }
            let stalled = self.compress.total_in() == consumed as u64
                && self.compress.total_out() == produced
                && room_left;
            if stalled {
                stored(message, output);
                return;
            }
        }
        output.truncate(output.len() - DEFLATE_TAIL.len());
    }
}

/// `message` as deflate stored blocks (no compression), ending like a sync flush without its
/// `00 00 ff ff`.
fn stored(message: &[u8], output: &mut Vec<u8>) {
    output.clear();
    for chunk in message.chunks(u16::MAX as usize) {
        let length = chunk.len() as u16;
        output.push(0x00);
        output.extend_from_slice(&length.to_le_bytes());
        output.extend_from_slice(&(!length).to_le_bytes());
        output.extend_from_slice(chunk);
    }
    // The header of the empty stored block whose `00 00 ff ff` the receiver appends.
    output.push(0x00);
}

/// Appends one final frame. `mask` is the client's masking key (`None` for a server);
/// `compressed` sets RSV1 (only for data frames holding a deflated message).
pub fn encode_frame(
    output: &mut BytesMut,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    compressed: bool,
) {
    let mut first = 0x80 | opcode.bits();
    if compressed {
        first |= 0x40;
    }
    output.reserve(payload.len() + 14);
    output.extend_from_slice(&[first]);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        length @ 0..=125 => output.extend_from_slice(&[mask_bit | length as u8]),
        length @ 126..=0xffff => {
            output.extend_from_slice(&[mask_bit | 126]);
            output.extend_from_slice(&(length as u16).to_be_bytes());
        }
        length => {
            output.extend_from_slice(&[mask_bit | 127]);
            output.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    match mask {
        None => output.extend_from_slice(payload),
        Some(key) => {
            output.extend_from_slice(&key);
            let start = output.len();
            output.extend_from_slice(payload);
            apply_mask(&mut output[start..], key);
        }
    }
}

#[cfg(test)]
#[path = "websocket_frame_tests.rs"]
mod tests;
