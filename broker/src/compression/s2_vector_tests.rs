//! Hand-made streams, one per block element and chunk type, and one per way a stream can be
//! wrong. The element builders here are written from the format description, independently
//! of the encoder. Every vector was also fed to Go's `s2.NewReader` (klauspost/compress
//! v1.19.2), which accepted exactly the valid ones with the same output.
#![allow(clippy::unwrap_used, clippy::panic)]

use super::tests::decode_stream;
use super::*;
use crate::compression::crc32c::masked_crc32c;

fn chunk(chunk_type: u8, body: &[u8]) -> Vec<u8> {
    let mut chunk = vec![chunk_type];
    chunk.extend_from_slice(&body.len().to_le_bytes()[..3]);
    chunk.extend_from_slice(body);
    chunk
}

fn compressed_chunk(plain: &[u8], block: &[u8]) -> Vec<u8> {
    let mut body = masked_crc32c(plain).to_le_bytes().to_vec();
    body.extend_from_slice(block);
    chunk(0x00, &body)
}

fn uncompressed_chunk(plain: &[u8]) -> Vec<u8> {
    let mut body = masked_crc32c(plain).to_le_bytes().to_vec();
    body.extend_from_slice(plain);
    chunk(0x01, &body)
}

fn s2_stream(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = b"\xff\x06\x00\x00S2sTwO".to_vec();
    chunks
        .iter()
        .for_each(|chunk| stream.extend_from_slice(chunk));
    stream
}

/// A stream of one compressed chunk holding `elements`, whose decoding is `plain`.
fn one_block(plain: &[u8], elements: &[Vec<u8>]) -> Vec<u8> {
    s2_stream(&[compressed_chunk(plain, &block(plain.len(), elements))])
}

fn block(decoded_length: usize, elements: &[Vec<u8>]) -> Vec<u8> {
    let mut block = Vec::new();
    let mut value = decoded_length;
    while value >= 0x80 {
        block.push((value as u8) | 0x80);
        value >>= 7;
    }
    block.push(value as u8);
    elements
        .iter()
        .for_each(|element| block.extend_from_slice(element));
    block
}

fn literal(bytes: &[u8]) -> Vec<u8> {
    let width = match bytes.len() - 1 {
        0..=59 => 0,
        60..=0xFF => 1,
        0x100..=0xFFFF => 2,
        _ => 3,
    };
    literal_with_width(bytes, width)
}

/// A literal whose length - 1 is carried in `width` extra bytes (0 = in the tag).
fn literal_with_width(bytes: &[u8], width: usize) -> Vec<u8> {
    let encoded = bytes.len() - 1;
    let mut element = if width == 0 {
        vec![(encoded as u8) << 2]
    } else {
        let mut element = vec![((59 + width) as u8) << 2];
        element.extend_from_slice(&encoded.to_le_bytes()[..width]);
        element
    };
    element.extend_from_slice(bytes);
    element
}

fn copy1(offset: usize, length: usize) -> Vec<u8> {
    vec![
        (((offset >> 8) as u8) << 5) | (((length - 4) as u8) << 2) | 1,
        offset as u8,
    ]
}

fn copy2(offset: usize, length: usize) -> Vec<u8> {
    vec![
        (((length - 1) as u8) << 2) | 2,
        offset as u8,
        (offset >> 8) as u8,
    ]
}

fn copy4(offset: usize, length: usize) -> Vec<u8> {
    let mut element = vec![(((length - 1) as u8) << 2) | 3];
    element.extend_from_slice(&(offset as u32).to_le_bytes());
    element
}

/// A repeat of the last offset, in the shortest form for `length`.
fn repeat(length: usize) -> Vec<u8> {
    let (code, extra, width) = match length {
        4..=8 => (length - 4, 0, 0),
        9..=263 => (5, length - 8, 1),
        264..=65_795 => (6, length - 260, 2),
        _ => (7, length - 65_540, 3),
    };
    let mut element = vec![((code as u8) << 2) | 1, 0];
    element.extend_from_slice(&extra.to_le_bytes()[..width]);
    element
}

fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|index| (index * 7 % 251) as u8).collect()
}

/// `plain` followed by `length` bytes copied from `offset` back, byte by byte.
fn then_copy(mut plain: Vec<u8>, offset: usize, length: usize) -> Vec<u8> {
    for _ in 0..length {
        plain.push(plain[plain.len() - offset]);
    }
    plain
}

pub(super) struct Vector {
    pub(super) name: &'static str,
    pub(super) stream: Vec<u8>,
    pub(super) expected: Result<Vec<u8>, S2Error>,
}

fn valid(name: &'static str, stream: Vec<u8>, plain: Vec<u8>) -> Vector {
    Vector {
        name,
        stream,
        expected: Ok(plain),
    }
}

fn invalid(name: &'static str, stream: Vec<u8>, error: S2Error) -> Vector {
    Vector {
        name,
        stream,
        expected: Err(error),
    }
}

fn malformed(reason: &'static str) -> S2Error {
    S2Error::MalformedBlock {
        reason,
        position: 0,
    }
}

fn element_vectors() -> Vec<Vector> {
    let mut vectors = Vec::new();
    let hello = b"hello".to_vec();
    vectors.push(valid(
        "literal in the tag",
        one_block(&hello, &[literal(&hello)]),
        hello,
    ));
    for (name, length, width) in [
        ("literal with one length byte", 200, 1),
        ("literal with two length bytes", 300, 2),
        ("literal with three length bytes", 5, 3),
        ("literal with four length bytes", 4, 4),
    ] {
        let plain = pattern(length);
        let stream = one_block(&plain, &[literal_with_width(&plain, width)]);
        vectors.push(valid(name, stream, plain));
    }
    let plain = then_copy(b"abcd".to_vec(), 4, 4);
    vectors.push(valid(
        "copy-1",
        one_block(&plain, &[literal(b"abcd"), copy1(4, 4)]),
        plain,
    ));
    let plain = then_copy(pattern(300), 300, 11);
    let stream = one_block(&plain, &[literal(&pattern(300)), copy1(300, 11)]);
    vectors.push(valid("copy-1 with an 11-bit offset", stream, plain));
    let plain = then_copy(b"a".to_vec(), 1, 11);
    vectors.push(valid(
        "copy-1 overlapping",
        one_block(&plain, &[literal(b"a"), copy1(1, 11)]),
        plain,
    ));
    let plain = then_copy(then_copy(pattern(1000), 1000, 1), 999, 64);
    let elements = [literal(&pattern(1000)), copy2(1000, 1), copy2(999, 64)];
    vectors.push(valid("copy-2", one_block(&plain, &elements), plain));
    let plain = then_copy(b"hello".to_vec(), 5, 3);
    vectors.push(valid(
        "copy-4",
        one_block(&plain, &[literal(b"hello"), copy4(5, 3)]),
        plain,
    ));
    let plain = then_copy(pattern(70_000), 70_000, 64);
    let stream = one_block(&plain, &[literal(&pattern(70_000)), copy4(70_000, 64)]);
    vectors.push(valid("copy-4 beyond 64 KiB", stream, plain));
    let mut plain = then_copy(b"xy".to_vec(), 2, 4);
    let mut elements = vec![literal(b"xy"), copy1(2, 4)];
    for length in [4, 8, 9, 263, 264, 65_795, 65_796, 100_000] {
        plain = then_copy(plain, 2, length);
        elements.push(repeat(length));
    }
    vectors.push(valid(
        "repeats of every length form",
        one_block(&plain, &elements),
        plain,
    ));
    let plain = then_copy(then_copy(b"abc".to_vec(), 3, 5), 3, 6);
    let elements = [literal(b"abc"), copy2(3, 5), repeat(6)];
    vectors.push(valid(
        "repeat of a copy-2 offset",
        one_block(&plain, &elements),
        plain,
    ));
    let plain = then_copy(then_copy(pattern(70_000), 70_000, 64), 70_000, 500);
    let elements = [literal(&pattern(70_000)), copy4(70_000, 64), repeat(500)];
    vectors.push(valid(
        "repeat of a copy-4 offset",
        one_block(&plain, &elements),
        plain,
    ));
    vectors
}

fn chunk_vectors() -> Vec<Vector> {
    let mut vectors = Vec::new();
    let text = b"PING\r\nPONG\r\n".to_vec();
    let block_of_text = block(text.len(), &[literal(&text)]);
    vectors.push(valid("empty stream", Vec::new(), Vec::new()));
    vectors.push(valid("identifier only", s2_stream(&[]), Vec::new()));
    vectors.push(valid(
        "uncompressed chunk",
        s2_stream(&[uncompressed_chunk(&text)]),
        text.clone(),
    ));
    let stream = s2_stream(&[uncompressed_chunk(b""), compressed_chunk(b"", &[0])]);
    vectors.push(valid("empty data chunks", stream, Vec::new()));
    let stream = s2_stream(&[
        chunk(0xfe, &[0; 9]),
        uncompressed_chunk(b"PING\r\n"),
        chunk(0x80, b"skippable"),
        chunk(0x99, b"an index"),
        chunk(0xfd, b""),
        compressed_chunk(b"PONG\r\n", &block(6, &[literal(b"PONG\r\n")])),
        chunk(0xfe, &[0; 100]),
    ]);
    vectors.push(valid("padding and skippable chunks", stream, text.clone()));
    let mut snappy = b"\xff\x06\x00\x00sNaPpY".to_vec();
    snappy.extend(compressed_chunk(&text, &block_of_text));
    vectors.push(valid("snappy identifier", snappy.clone(), text.clone()));
    let mut concatenated = s2_stream(&[uncompressed_chunk(b"PING\r\n")]);
    concatenated.extend(&snappy);
    concatenated.extend(s2_stream(&[uncompressed_chunk(b"+OK\r\n")]));
    let plain = [&b"PING\r\n"[..], &text, b"+OK\r\n"].concat();
    vectors.push(valid("identifier repeated mid-stream", concatenated, plain));
    let mut snappy_limit = b"\xff\x06\x00\x00sNaPpY".to_vec();
    snappy_limit.extend(uncompressed_chunk(&pattern(MAX_SNAPPY_BLOCK_SIZE)));
    vectors.push(valid(
        "snappy block at its limit",
        snappy_limit,
        pattern(MAX_SNAPPY_BLOCK_SIZE),
    ));
    vectors
}

fn framing_error_vectors() -> Vec<Vector> {
    let text = b"PING\r\n".to_vec();
    let good = s2_stream(&[uncompressed_chunk(&text)]);
    let wrong_checksum = compressed_chunk(b"PONG\r\n", &block(6, &[literal(&text)]));
    let mut wrong_uncompressed = uncompressed_chunk(&text);
    wrong_uncompressed[8] ^= 0x20;
    let mut snappy_over_limit = b"\xff\x06\x00\x00sNaPpY".to_vec();
    snappy_over_limit.extend(uncompressed_chunk(&pattern(MAX_SNAPPY_BLOCK_SIZE + 1)));
    let mut snappy_block_over_limit = b"\xff\x06\x00\x00sNaPpY".to_vec();
    let plain = then_copy(b"a".to_vec(), 1, MAX_SNAPPY_BLOCK_SIZE);
    snappy_block_over_limit.extend(compressed_chunk(
        &plain,
        &block(
            plain.len(),
            &[
                literal(b"a"),
                copy2(1, 64),
                repeat(MAX_SNAPPY_BLOCK_SIZE - 64),
            ],
        ),
    ));
    let huge_block = block(MAX_BLOCK_SIZE + 1, &[literal(b"a")]);
    let mut truncated_header = good.clone();
    truncated_header.extend_from_slice(&[0x01, 0x10]);
    let mut truncated_padding = good.clone();
    truncated_padding.extend(chunk(0xfe, &[0; 100]));
    truncated_padding.truncate(truncated_padding.len() - 50);
    vec![
        invalid(
            "data before the identifier",
            uncompressed_chunk(&text),
            S2Error::MissingStreamIdentifier { chunk_type: 1 },
        ),
        invalid(
            "padding before the identifier",
            chunk(0xfe, &[0; 4]),
            S2Error::MissingStreamIdentifier { chunk_type: 0xfe },
        ),
        invalid(
            "unknown identifier",
            chunk(0xff, b"sNaPpZ"),
            S2Error::UnknownStreamIdentifier { found: *b"sNaPpZ" },
        ),
        invalid(
            "identifier of the wrong length",
            chunk(0xff, b"S2sTwOx"),
            S2Error::StreamIdentifierLength { length: 7 },
        ),
        invalid(
            "reserved unskippable chunk 0x02",
            s2_stream(&[chunk(0x02, b"")]),
            S2Error::UnskippableChunk { chunk_type: 2 },
        ),
        invalid(
            "reserved unskippable chunk 0x7f",
            s2_stream(&[chunk(0x7f, b"x")]),
            S2Error::UnskippableChunk { chunk_type: 0x7f },
        ),
        invalid(
            "data chunk without a checksum",
            s2_stream(&[chunk(0x00, b"abc")]),
            S2Error::ChunkTooShort { length: 3 },
        ),
        invalid(
            "compressed checksum mismatch",
            s2_stream(&[wrong_checksum]),
            S2Error::ChecksumMismatch {
                expected: masked_crc32c(b"PONG\r\n"),
                actual: masked_crc32c(&text),
            },
        ),
        invalid(
            "uncompressed checksum mismatch",
            s2_stream(&[wrong_uncompressed]),
            S2Error::ChecksumMismatch {
                expected: masked_crc32c(&text),
                actual: masked_crc32c(b"pING\r\n"),
            },
        ),
        invalid(
            "block over 4 MiB",
            s2_stream(&[compressed_chunk(b"a", &huge_block)]),
            S2Error::BlockTooLarge {
                length: MAX_BLOCK_SIZE + 1,
                limit: MAX_BLOCK_SIZE,
            },
        ),
        invalid(
            "compressed chunk over its limit",
            s2_stream(&[vec![0x00, 0x0d, 0x00, 0x40]]),
            S2Error::ChunkTooLarge {
                chunk_type: 0,
                length: 0x40_000d,
                limit: 0x40_000c,
            },
        ),
        invalid(
            "uncompressed chunk over 4 MiB",
            s2_stream(&[vec![0x01, 0x05, 0x00, 0x40]]),
            S2Error::ChunkTooLarge {
                chunk_type: 1,
                length: 0x40_0005,
                limit: 0x40_0004,
            },
        ),
        invalid(
            "snappy uncompressed chunk over 64 KiB",
            snappy_over_limit,
            S2Error::ChunkTooLarge {
                chunk_type: 1,
                length: 65_541,
                limit: 65_540,
            },
        ),
        invalid(
            "snappy block over 64 KiB",
            snappy_block_over_limit,
            S2Error::BlockTooLarge {
                length: 65_537,
                limit: 65_536,
            },
        ),
        invalid(
            "truncated data chunk",
            good[..good.len() - 1].to_vec(),
            S2Error::TruncatedStream {
                buffered: 13,
                missing_skipped: 0,
            },
        ),
        invalid(
            "truncated chunk header",
            truncated_header,
            S2Error::TruncatedStream {
                buffered: 2,
                missing_skipped: 0,
            },
        ),
        invalid(
            "truncated padding",
            truncated_padding,
            S2Error::TruncatedStream {
                buffered: 0,
                missing_skipped: 50,
            },
        ),
    ]
}

fn block_error_vectors() -> Vec<Vector> {
    let stream = |declared: usize, elements: &[Vec<u8>]| {
        // The checksum is irrelevant: decoding fails first.
        s2_stream(&[compressed_chunk(b"", &block(declared, elements))])
    };
    vec![
        invalid(
            "repeat before any copy",
            stream(8, &[literal(b"abcd"), repeat(4)]),
            malformed("copy without an offset"),
        ),
        invalid(
            "copy before the block start",
            stream(8, &[literal(b"abc"), copy1(4, 5)]),
            malformed("copy reaches before the start of the block"),
        ),
        invalid(
            "copy with offset zero",
            stream(8, &[literal(b"abcd"), copy2(0, 4)]),
            malformed("copy without an offset"),
        ),
        invalid(
            "literal past the declared length",
            stream(3, &[literal(b"abcd")]),
            malformed("literal overruns the decoded length"),
        ),
        invalid(
            "literal past the block end",
            stream(4, &[vec![3 << 2, b'a', b'b']]),
            malformed("literal runs past the end of the block"),
        ),
        invalid(
            "copy past the declared length",
            stream(6, &[literal(b"abcd"), copy1(4, 4)]),
            malformed("copy overruns the decoded length"),
        ),
        invalid(
            "block shorter than declared",
            stream(9, &[literal(b"abcd"), copy1(4, 4)]),
            malformed("block ends before its declared length"),
        ),
        invalid(
            "truncated copy-4",
            stream(9, &[literal(b"abcd"), vec![3, 4, 0]]),
            malformed("element truncated"),
        ),
        invalid(
            "truncated repeat length",
            stream(
                9,
                &[literal(b"abcd"), copy1(4, 4), vec![(6 << 2) | 1, 0, 1]],
            ),
            malformed("repeat length truncated"),
        ),
        invalid(
            "overlong length varint",
            s2_stream(&[compressed_chunk(b"", &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00])]),
            malformed("truncated or overlong decoded-length varint"),
        ),
    ]
}

pub(super) fn all_vectors() -> Vec<Vector> {
    [
        element_vectors(),
        chunk_vectors(),
        framing_error_vectors(),
        block_error_vectors(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn same_outcome(actual: &Result<Vec<u8>, S2Error>, expected: &Result<Vec<u8>, S2Error>) -> bool {
    match (actual, expected) {
        (
            Err(S2Error::MalformedBlock { reason, .. }),
            Err(S2Error::MalformedBlock {
                reason: expected_reason,
                ..
            }),
        ) => reason == expected_reason,
        _ => actual == expected,
    }
}

#[test]
fn hand_made_vectors_decode_as_specified_in_any_split() {
    for vector in all_vectors() {
        for piece in [1, 5, vector.stream.len()] {
            let actual = decode_stream(&vector.stream, piece);
            assert!(
                same_outcome(&actual, &vector.expected),
                "{} (pieces of {piece}): got {:?}, want {:?}",
                vector.name,
                actual.as_ref().map(Vec::len),
                vector.expected.as_ref().map(Vec::len),
            );
        }
    }
}

#[test]
fn a_failed_chunk_appends_nothing() {
    let text = b"PING\r\n";
    let mut wrong = uncompressed_chunk(text);
    wrong[8] ^= 1;
    let mut decoder = S2Decoder::new();
    let mut output = BytesMut::from(&b"earlier"[..]);
    decoder.push(&s2_stream(&[wrong])).unwrap();
    assert!(matches!(
        decoder.decode(&mut output),
        Err(S2Error::ChecksumMismatch { .. })
    ));
    assert_eq!(&output[..], b"earlier");
}
