//! Encoding one S2 block (the element format is described in `block_decode`).
//!
//! Two greedy LZ77 match finders share one element writer:
//! - *fast* keeps one hash table of 6-byte prefixes and skips ahead faster the longer it
//!   finds nothing, so incompressible data costs little;
//! - *better* keeps a table of 8-byte and one of 4-byte prefixes, takes the longer of the two
//!   candidates, skips more slowly and indexes positions inside each match.
//!
//! Both try the previous copy's offset first, which S2 encodes as a two- or three-byte
//! *repeat*. Encoding gives up (returns `false`) as soon as the output would not be smaller
//! than the input, so the caller can store the block uncompressed instead.

use bytes::{BufMut, BytesMut};

/// Blocks shorter than this are never worth compressing.
const MINIMUM_COMPRESSIBLE_LENGTH: usize = 32;
/// Matches are searched only where eight bytes can still be loaded.
const INPUT_MARGIN: usize = 8;
/// Copies with a 32-bit offset cost five bytes; shorter matches that far back are skipped.
const MINIMUM_FAR_MATCH_LENGTH: usize = 8;
const FAR_OFFSET: usize = 1 << 16;

const FAST_TABLE_BITS: u32 = 14;
const BETTER_LONG_TABLE_BITS: u32 = 17;
const BETTER_SHORT_TABLE_BITS: u32 = 14;
const MINIMUM_TABLE_BITS: u32 = 8;

/// How hard the match finder works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchEffort {
    Fast,
    Better,
}

/// Hash tables reused from block to block; each block clears only the part its size needs.
#[derive(Debug, Default)]
pub struct BlockEncoder {
    short_table: Vec<u32>,
    long_table: Vec<u32>,
}

impl BlockEncoder {
    /// Appends the block (length varint and elements) to `output` and returns `true` when it
    /// is shorter than `input`; otherwise returns `false` with `output` possibly extended,
    /// which the caller truncates.
    pub fn encode(&mut self, effort: MatchEffort, input: &[u8], output: &mut BytesMut) -> bool {
        if input.len() < MINIMUM_COMPRESSIBLE_LENGTH {
            return false;
        }
        let mut writer = ElementWriter {
            start: output.len(),
            limit: input.len(),
            output,
            last_offset: 0,
        };
        writer.put_varint(input.len());
        match effort {
            MatchEffort::Fast => self.encode_fast(input, &mut writer),
            MatchEffort::Better => self.encode_better(input, &mut writer),
        }
    }

    fn encode_fast(&mut self, input: &[u8], writer: &mut ElementWriter<'_>) -> bool {
        let bits = table_bits(input.len(), FAST_TABLE_BITS);
        reset_table(&mut self.short_table, bits);
        let table = &mut self.short_table;
        let search_limit = input.len() - INPUT_MARGIN;
        let mut next_emit = 0;
        let mut position = 1;
        'blocks: loop {
            let (mut candidate, mut length) = loop {
                if position > search_limit {
                    break 'blocks;
                }
                let current = load_u64(input, position);
                if let Some(found) = repeat_match(input, writer.last_offset, position, current) {
                    break found;
                }
                let slot = hash6(current, bits);
                let candidate = table[slot] as usize;
                table[slot] = position as u32;
                if let Some(length) = match_at(input, candidate, position, current) {
                    break (candidate, length);
                }
                position += 1 + ((position - next_emit) >> 5);
            };
            extend_backwards(input, &mut candidate, &mut position, &mut length, next_emit);
            if !writer.literal(&input[next_emit..position])
                || !writer.copy(position - candidate, length)
            {
                return false;
            }
            position += length;
            next_emit = position;
            if position > search_limit {
                break;
            }
            let seed = position - 2;
            table[hash6(load_u64(input, seed), bits)] = seed as u32;
        }
        writer.literal(&input[next_emit..])
    }

    fn encode_better(&mut self, input: &[u8], writer: &mut ElementWriter<'_>) -> bool {
        let long_bits = table_bits(input.len(), BETTER_LONG_TABLE_BITS);
        let short_bits = table_bits(input.len(), BETTER_SHORT_TABLE_BITS);
        reset_table(&mut self.long_table, long_bits);
        reset_table(&mut self.short_table, short_bits);
        let search_limit = input.len() - INPUT_MARGIN;
        let mut next_emit = 0;
        let mut position = 1;
        'blocks: loop {
            let (mut candidate, mut length) = loop {
                if position > search_limit {
                    break 'blocks;
                }
                let current = load_u64(input, position);
                let repeat = repeat_match(input, writer.last_offset, position, current);
                let long_slot = hash8(current, long_bits);
                let short_slot = hash4(current, short_bits);
                let long_candidate = self.long_table[long_slot] as usize;
                let short_candidate = self.short_table[short_slot] as usize;
                self.long_table[long_slot] = position as u32;
                self.short_table[short_slot] = position as u32;
                let best = [
                    repeat,
                    match_at(input, long_candidate, position, current)
                        .map(|length| (long_candidate, length)),
                    match_at(input, short_candidate, position, current)
                        .map(|length| (short_candidate, length)),
                ]
                .into_iter()
                .flatten()
                .max_by_key(|&(candidate, length)| (length, candidate));
                if let Some(found) = best {
                    break found;
                }
                position += 1 + ((position - next_emit) >> 7);
            };
            extend_backwards(input, &mut candidate, &mut position, &mut length, next_emit);
            if !writer.literal(&input[next_emit..position])
                || !writer.copy(position - candidate, length)
            {
                return false;
            }
            let match_start = position;
            position += length;
            next_emit = position;
            if position > search_limit {
                break;
            }
            for indexed in [match_start + 1, match_start + 2, position - 2, position - 1] {
                let value = load_u64(input, indexed);
                self.long_table[hash8(value, long_bits)] = indexed as u32;
                self.short_table[hash4(value, short_bits)] = indexed as u32;
            }
        }
        writer.literal(&input[next_emit..])
    }
}

/// Appends elements to the output and tracks the offset a repeat would reuse.
struct ElementWriter<'a> {
    output: &'a mut BytesMut,
    start: usize,
    /// The block must stay strictly shorter than this.
    limit: usize,
    last_offset: usize,
}

impl ElementWriter<'_> {
    fn written(&self) -> usize {
        self.output.len() - self.start
    }

    fn put_varint(&mut self, mut value: usize) {
        while value >= 0x80 {
            self.output.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.output.put_u8(value as u8);
    }

    fn literal(&mut self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return true;
        }
        // Tag plus up to four length bytes.
        if self.written() + bytes.len() + 5 >= self.limit {
            return false;
        }
        let encoded_length = bytes.len() - 1;
        if encoded_length < 60 {
            self.output.put_u8((encoded_length as u8) << 2);
        } else {
            let width = (usize::BITS - encoded_length.leading_zeros()).div_ceil(8) as usize;
            self.output.put_u8(((59 + width) as u8) << 2);
            self.output
                .put_slice(&encoded_length.to_le_bytes()[..width]);
        }
        self.output.put_slice(bytes);
        true
    }

    fn copy(&mut self, offset: usize, length: usize) -> bool {
        if offset == self.last_offset {
            self.repeat(offset, length);
        } else {
            self.new_offset_copy(offset, length);
            self.last_offset = offset;
        }
        self.written() < self.limit
    }

    fn new_offset_copy(&mut self, offset: usize, mut length: usize) {
        if offset >= FAR_OFFSET {
            let first = length.min(64);
            self.copy_with_four_byte_offset(offset, first);
            length -= first;
            if length >= 4 {
                self.repeat(offset, length);
            } else if length > 0 {
                self.copy_with_four_byte_offset(offset, length);
            }
            return;
        }
        if length > 64 {
            // Set the offset with the cheapest element, then continue as a repeat (at least
            // five bytes remain, above a repeat's minimum of four).
            let first = if offset < 2048 { 8 } else { 60 };
            self.copy_with_offset(offset, first);
            self.repeat(offset, length - first);
            return;
        }
        self.copy_with_offset(offset, length);
    }

    /// A copy-1 (11-bit offset, length 4–11) or copy-2 (16-bit offset, length 1–64).
    fn copy_with_offset(&mut self, offset: usize, length: usize) {
        if length < 12 && offset < 2048 {
            self.output
                .put_u8((((offset >> 8) as u8) << 5) | (((length - 4) as u8) << 2) | 0x01);
            self.output.put_u8(offset as u8);
        } else {
            self.output.put_u8((((length - 1) as u8) << 2) | 0x02);
            self.output.put_u16_le(offset as u16);
        }
    }

    fn copy_with_four_byte_offset(&mut self, offset: usize, length: usize) {
        self.output.put_u8((((length - 1) as u8) << 2) | 0x03);
        self.output.put_u32_le(offset as u32);
    }

    /// A copy reusing the last offset; `length` is at least 4.
    fn repeat(&mut self, offset: usize, mut length: usize) {
        const LONGEST_WIDE_REPEAT: usize = (1 << 24) - 1 + (1 << 16) + 4;
        loop {
            let extra = length - 4;
            if extra <= 4 {
                self.output.put_slice(&[((extra as u8) << 2) | 0x01, 0]);
                return;
            }
            if extra < 8 && offset < 2048 {
                // Same two bytes as a repeat of 4–8, but restating the offset.
                self.copy_with_offset(offset, length);
                return;
            }
            if extra < (1 << 8) + 4 {
                self.output
                    .put_slice(&[(5 << 2) | 0x01, 0, (extra - 4) as u8]);
                return;
            }
            if extra < (1 << 16) + (1 << 8) {
                self.output.put_slice(&[(6 << 2) | 0x01, 0]);
                self.output.put_u16_le((extra - (1 << 8)) as u16);
                return;
            }
            // Leave at least four bytes for the next repeat when splitting.
            let this_length = if length > LONGEST_WIDE_REPEAT {
                (length - 4).min(LONGEST_WIDE_REPEAT)
            } else {
                length
            };
            let value = this_length - 4 - (1 << 16);
            self.output.put_slice(&[(7 << 2) | 0x01, 0]);
            self.output.put_slice(&value.to_le_bytes()[..3]);
            length -= this_length;
            if length == 0 {
                return;
            }
        }
    }
}

fn table_bits(input_length: usize, maximum: u32) -> u32 {
    let needed = usize::BITS - input_length.leading_zeros();
    needed.clamp(MINIMUM_TABLE_BITS, maximum)
}

fn reset_table(table: &mut Vec<u32>, bits: u32) {
    table.clear();
    table.resize(1 << bits, 0);
}

fn load_u64(input: &[u8], position: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&input[position..position + 8]);
    u64::from_le_bytes(bytes)
}

fn load_u32(input: &[u8], position: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&input[position..position + 4]);
    u32::from_le_bytes(bytes)
}

/// Multiplicative hashes of the low 4, 6 and 8 bytes (odd 64-bit constants).
fn hash4(value: u64, bits: u32) -> usize {
    ((value << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

fn hash6(value: u64, bits: u32) -> usize {
    ((value << 16).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) >> (64 - bits)) as usize
}

fn hash8(value: u64, bits: u32) -> usize {
    (value.wrapping_mul(0xFF51_AFD7_ED55_8CCD) >> (64 - bits)) as usize
}

/// A match of the previous offset at `position`, with its forward length.
fn repeat_match(
    input: &[u8],
    last_offset: usize,
    position: usize,
    current: u64,
) -> Option<(usize, usize)> {
    if last_offset == 0 || last_offset > position {
        return None;
    }
    let candidate = position - last_offset;
    match_at(input, candidate, position, current).map(|length| (candidate, length))
}

/// The forward match length when `candidate` (before `position`) starts a usable match.
fn match_at(input: &[u8], candidate: usize, position: usize, current: u64) -> Option<usize> {
    if candidate >= position || load_u32(input, candidate) != current as u32 {
        return None;
    }
    let length = 4 + common_prefix(input, candidate + 4, position + 4);
    if position - candidate >= FAR_OFFSET && length < MINIMUM_FAR_MATCH_LENGTH {
        return None;
    }
    Some(length)
}

/// Grows a match backwards over bytes not yet emitted.
fn extend_backwards(
    input: &[u8],
    candidate: &mut usize,
    position: &mut usize,
    length: &mut usize,
    next_emit: usize,
) {
    while *candidate > 0 && *position > next_emit && input[*candidate - 1] == input[*position - 1] {
        *candidate -= 1;
        *position -= 1;
        *length += 1;
    }
}

/// How many bytes from `earlier` equal those from `later` (`earlier < later`).
fn common_prefix(input: &[u8], earlier: usize, later: usize) -> usize {
    let available = input.len().saturating_sub(later);
    let mut length = 0;
    while length + 8 <= available {
        let difference = load_u64(input, earlier + length) ^ load_u64(input, later + length);
        if difference != 0 {
            return length + (difference.trailing_zeros() / 8) as usize;
        }
        length += 8;
    }
    while length < available && input[earlier + length] == input[later + length] {
        length += 1;
    }
    length
}
