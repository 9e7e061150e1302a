//! Decoding one S2 block: a varint of the decoded length, then a sequence of elements.
//!
//! Elements are tagged by the low two bits of their first byte:
//! - `00` literal: length - 1 in the upper six bits, or in the next 1–4 bytes when those six
//!   bits are 60–63;
//! - `01` copy with an 11-bit offset and a length of 4–11; an offset of zero makes it an S2
//!   *repeat*, which reuses the previous copy's offset with a length of 4–8 or one carried in
//!   the next 1–3 bytes;
//! - `10` copy with a 16-bit offset, `11` copy with a 32-bit offset, both of length 1–64.
//!
//! Every length and offset is checked against the bytes present and the declared size, so a
//! hostile block can neither read past its input nor write past its output.

use super::s2::S2Error;

/// Reads the varint that starts a block: `(decoded_length, header_length)`.
pub fn decoded_length(block: &[u8]) -> Result<(usize, usize), S2Error> {
    let mut value: u64 = 0;
    for (index, &byte) in block.iter().take(5).enumerate() {
        value |= u64::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            if value > u64::from(u32::MAX) {
                return Err(malformed("decoded length exceeds 32 bits", 0));
            }
            let length = usize::try_from(value)
                .map_err(|_| malformed("decoded length exceeds the address space", 0))?;
            return Ok((length, index + 1));
        }
    }
    Err(malformed("truncated or overlong decoded-length varint", 0))
}

/// Decodes `elements` (a block without its length varint) into `output`, which has exactly
/// the declared decoded length.
pub fn decode_elements(elements: &[u8], output: &mut [u8]) -> Result<(), S2Error> {
    let mut source = 0;
    let mut written = 0;
    // Repeats refer to the last copy offset of this block; none exists at its start.
    let mut offset = 0usize;
    while source < elements.len() {
        let tag = elements[source];
        let length;
        match tag & 0x03 {
            0 => {
                let (literal_length, header_length) = literal_length(elements, source)?;
                let start = source + header_length;
                if literal_length > elements.len() - start {
                    return Err(malformed("literal runs past the end of the block", source));
                }
                if literal_length > output.len() - written {
                    return Err(malformed("literal overruns the decoded length", source));
                }
                output[written..written + literal_length]
                    .copy_from_slice(&elements[start..start + literal_length]);
                written += literal_length;
                source = start + literal_length;
                continue;
            }
            1 => {
                let operands = operands(elements, source, 1)?;
                let length_bits = usize::from((tag >> 2) & 0x07);
                let encoded_offset = (usize::from(tag & 0xE0) << 3) | usize::from(operands[0]);
                source += 2;
                if encoded_offset == 0 {
                    let (repeat_length, extra) = repeat_length(elements, source, length_bits)?;
                    length = repeat_length;
                    source += extra;
                } else {
                    offset = encoded_offset;
                    length = length_bits + 4;
                }
            }
            2 => {
                let operands = operands(elements, source, 2)?;
                offset = usize::from(u16::from_le_bytes([operands[0], operands[1]]));
                length = usize::from(tag >> 2) + 1;
                source += 3;
            }
            _ => {
                let operands = operands(elements, source, 4)?;
                let wide_offset =
                    u32::from_le_bytes([operands[0], operands[1], operands[2], operands[3]]);
                offset = usize::try_from(wide_offset)
                    .map_err(|_| malformed("copy offset exceeds the address space", source))?;
                length = usize::from(tag >> 2) + 1;
                source += 5;
            }
        }
        if offset == 0 {
            return Err(malformed("copy without an offset", source));
        }
        if offset > written {
            return Err(malformed(
                "copy reaches before the start of the block",
                source,
            ));
        }
        if length > output.len() - written {
            return Err(malformed("copy overruns the decoded length", source));
        }
        copy_match(output, written, offset, length);
        written += length;
    }
    if written != output.len() {
        return Err(malformed(
            "block ends before its declared length",
            elements.len(),
        ));
    }
    Ok(())
}

fn malformed(reason: &'static str, position: usize) -> S2Error {
    S2Error::MalformedBlock { reason, position }
}

/// The `count` bytes after the tag at `position`.
fn operands(elements: &[u8], position: usize, count: usize) -> Result<&[u8], S2Error> {
    elements
        .get(position + 1..position + 1 + count)
        .ok_or_else(|| malformed("element truncated", position))
}

/// A literal's length and the size of its tag plus length bytes.
fn literal_length(elements: &[u8], position: usize) -> Result<(usize, usize), S2Error> {
    let code = usize::from(elements[position] >> 2);
    if code < 60 {
        return Ok((code + 1, 1));
    }
    let width = code - 59;
    let bytes = operands(elements, position, width)?;
    let value = bytes
        .iter()
        .rev()
        .fold(0usize, |value, &byte| (value << 8) | usize::from(byte));
    Ok((value + 1, 1 + width))
}

/// A repeat's length and how many bytes after the two-byte element carried it.
fn repeat_length(
    elements: &[u8],
    position: usize,
    length_bits: usize,
) -> Result<(usize, usize), S2Error> {
    let (width, bias) = match length_bits {
        0..=4 => return Ok((length_bits + 4, 0)),
        5 => (1, 8),
        6 => (2, (1 << 8) + 4),
        _ => (3, (1 << 16) + 4),
    };
    let bytes = elements
        .get(position..position + width)
        .ok_or_else(|| malformed("repeat length truncated", position))?;
    let value = bytes
        .iter()
        .rev()
        .fold(0usize, |value, &byte| (value << 8) | usize::from(byte));
    Ok((value + bias, width))
}

/// Copies `length` bytes from `offset` bytes back; overlapping copies repeat the pattern.
fn copy_match(output: &mut [u8], position: usize, offset: usize, length: usize) {
    let source = position - offset;
    if offset >= length {
        output.copy_within(source..source + length, position);
        return;
    }
    // The bytes from `source` to the write position repeat with period `offset`; while
    // `copied` is a multiple of it, copying from `source` extends that run, doubling it.
    let mut copied = 0;
    while copied < length {
        let chunk = (offset + copied).min(length - copied);
        output.copy_within(source..source + chunk, position + copied);
        copied += chunk;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &[u8]) -> Result<Vec<u8>, S2Error> {
        let (length, header) = decoded_length(block)?;
        let mut output = vec![0; length];
        decode_elements(&block[header..], &mut output)?;
        Ok(output)
    }

    #[test]
    fn overlapping_copies_repeat_the_pattern() {
        for offset in 1..6 {
            for length in 1..40 {
                let mut output = vec![0u8; offset + length];
                for (index, byte) in output.iter_mut().take(offset).enumerate() {
                    *byte = b'a' + index as u8;
                }
                copy_match(&mut output, offset, offset, length);
                for index in offset..offset + length {
                    assert_eq!(output[index], output[index - offset]);
                }
            }
        }
    }

    #[test]
    fn varint_of_more_than_five_bytes_or_32_bits_is_rejected() {
        assert_eq!(decoded_length(&[0x80, 0x01]), Ok((128, 2)));
        assert!(decoded_length(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(decoded_length(&[0xFF, 0xFF, 0xFF, 0xFF, 0x1F]).is_err());
        assert!(decoded_length(&[0x80]).is_err());
        assert!(decoded_length(&[]).is_err());
    }

    #[test]
    fn each_element_kind_decodes() {
        // Literal "abcd", then copy-1 (offset 4, length 4).
        assert_eq!(
            decode(b"\x08\x0cabcd\x01\x04").as_deref(),
            Ok(&b"abcdabcd"[..])
        );
        // Literal "ab", copy-2 of offset 2 and length 6.
        assert_eq!(
            decode(b"\x08\x04ab\x16\x02\x00").as_deref(),
            Ok(&b"abababab"[..])
        );
        // Literal "ab", copy-4 of offset 2 and length 3.
        assert_eq!(
            decode(b"\x05\x04ab\x0b\x02\x00\x00\x00").as_deref(),
            Ok(&b"ababa"[..])
        );
        // Literal "xy", copy-1 (offset 2, length 4), repeat of length 4.
        assert_eq!(
            decode(b"\x0a\x04xy\x01\x02\x01\x00").as_deref(),
            Ok(&b"xyxyxyxyxy"[..])
        );
        // A literal with a one-byte length: 61 bytes.
        let mut block = vec![61, 60 << 2, 60];
        block.extend(std::iter::repeat_n(b'z', 61));
        assert_eq!(decode(&block), Ok(vec![b'z'; 61]));
    }

    #[test]
    fn repeat_lengths_with_extra_bytes() {
        // "a", copy-1 offset 1 length 4, then repeats with 1, 2 and 3 length bytes.
        let prefix: &[u8] = b"\x00a\x01\x01";
        let cases: [(&[u8], usize); 3] = [
            (b"\x15\x00\x02", 10),
            (b"\x19\x00\x01\x00", 261),
            (b"\x1d\x00\x00\x00\x00", 65540),
        ];
        for (repeat, repeat_length) in cases {
            let total = 5 + repeat_length;
            let mut block = Vec::new();
            let mut varint = total;
            while varint >= 0x80 {
                block.push((varint as u8) | 0x80);
                varint >>= 7;
            }
            block.push(varint as u8);
            block.extend_from_slice(prefix);
            block.extend_from_slice(repeat);
            assert_eq!(decode(&block), Ok(vec![b'a'; total]), "repeat {repeat:?}");
        }
    }

    #[test]
    fn malformed_blocks_are_rejected() {
        let cases: [&[u8]; 8] = [
            b"\x04\x01\x00",           // repeat before any copy
            b"\x04\x00a\x05\x02",      // copy reaching before the block
            b"\x02\x0cabcd",           // literal longer than the declared length
            b"\x08\x0cab",             // literal past the end of the input
            b"\x08\x04ab",             // block ends early
            b"\x08\x04ab\x16\x02",     // truncated copy-2
            b"\x08\x04ab\x16\x00\x00", // copy-2 with offset zero
            b"\x05\x04ab\x15\x00",     // repeat length byte missing
        ];
        for block in cases {
            assert!(
                matches!(decode(block), Err(S2Error::MalformedBlock { .. })),
                "{block:?}"
            );
        }
    }
}
