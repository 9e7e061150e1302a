#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;

/// xorshift64 with shifts 13/7/17; the Go program that produced `testdata/` uses the same.
pub(super) struct Xorshift(u64);

impl Xorshift {
    pub(super) fn new(seed: u64) -> Self {
        Self(0x9E37_79B9_7F4A_7C15 ^ seed)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: [&str; 15] = [
    "orders",
    "payments",
    "inventory",
    "us",
    "eu",
    "created",
    "updated",
    "id",
    "amount",
    "currency",
    "status",
    "ok",
    "customer",
    "sku",
    "quantity",
];

/// Random runs, back-references (some beyond 64 KiB), byte runs and words, as
/// `mixedData` in the fixture generator.
pub(super) fn mixed_data(seed: u64, size: usize) -> Vec<u8> {
    let mut random = Xorshift::new(seed);
    let mut output: Vec<u8> = Vec::with_capacity(size + 4096);
    while output.len() < size {
        let choice = random.next() % 4;
        let segment = 16 + (random.next() % 2048) as usize;
        match choice {
            0 => (0..segment).for_each(|_| output.push(random.next() as u8)),
            1 => {
                if output.is_empty() {
                    continue;
                }
                let distance = 1 + (random.next() % output.len() as u64) as usize;
                let start = output.len() - distance;
                for index in 0..segment {
                    output.push(output[start + index]);
                }
            }
            2 => {
                let byte = random.next() as u8;
                output.extend(std::iter::repeat_n(byte, segment));
            }
            _ => {
                let target = output.len() + segment;
                while output.len() < target {
                    let word = WORDS[(random.next() % WORDS.len() as u64) as usize];
                    output.extend_from_slice(word.as_bytes());
                    output.push(b' ');
                }
            }
        }
    }
    output.truncate(size);
    output
}

pub(super) fn random_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut random = Xorshift::new(seed);
    (0..size).map(|_| random.next() as u8).collect()
}

/// Feeds `stream` in pieces of `piece` bytes, draining after each push, then checks the end.
pub(super) fn decode_stream(stream: &[u8], piece: usize) -> Result<Vec<u8>, S2Error> {
    let mut decoder = S2Decoder::new();
    let mut output = BytesMut::new();
    for piece in stream.chunks(piece.max(1)) {
        decoder.push(piece)?;
        while let Decoded::Produced(_) = decoder.decode(&mut output)? {}
    }
    decoder.finish()?;
    Ok(output.to_vec())
}

fn encode_stream(level: S2Level, block_size: usize, input: &[u8]) -> Vec<u8> {
    let mut encoder = S2Encoder::with_block_size(level, block_size).expect("valid block size");
    let mut output = BytesMut::new();
    encoder.write(input, &mut output);
    encoder.flush(&mut output);
    output.to_vec()
}

/// `(chunk_type, body)` of every chunk, for asserting on the framing.
fn chunks(stream: &[u8]) -> Vec<(u8, &[u8])> {
    let mut chunks = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        let length = usize::from(rest[1]) | usize::from(rest[2]) << 8 | usize::from(rest[3]) << 16;
        chunks.push((rest[0], &rest[4..4 + length]));
        rest = &rest[4 + length..];
    }
    assert!(rest.is_empty(), "stream ends inside a chunk header");
    chunks
}

const LEVELS: [S2Level; 3] = [S2Level::Uncompressed, S2Level::Fast, S2Level::Better];
const NATS_TRAFFIC: &[u8] = include_bytes!("testdata/nats_traffic.txt");
const MIXED_SIZE: usize = 128 << 10;
const MIXED_SEED: u64 = 42;

#[test]
fn streams_written_by_go_decode_to_the_original() {
    let mixed = mixed_data(MIXED_SEED, MIXED_SIZE);
    let fixtures: [(&str, &[u8], &[u8]); 9] = [
        (
            "default",
            include_bytes!("testdata/nats_traffic.default.s2"),
            NATS_TRAFFIC,
        ),
        (
            "better",
            include_bytes!("testdata/nats_traffic.better.s2"),
            NATS_TRAFFIC,
        ),
        (
            "best",
            include_bytes!("testdata/nats_traffic.best.s2"),
            NATS_TRAFFIC,
        ),
        (
            "flushed",
            include_bytes!("testdata/nats_traffic.flushed.s2"),
            NATS_TRAFFIC,
        ),
        (
            "uncompressed",
            include_bytes!("testdata/nats_traffic.uncompressed.s2"),
            NATS_TRAFFIC,
        ),
        (
            "snappy",
            include_bytes!("testdata/nats_traffic.snappy.s2"),
            NATS_TRAFFIC,
        ),
        (
            "padded",
            include_bytes!("testdata/nats_traffic.padded.s2"),
            NATS_TRAFFIC,
        ),
        ("mixed", include_bytes!("testdata/mixed.default.s2"), &mixed),
        (
            "mixed 64k blocks + index",
            include_bytes!("testdata/mixed.blocks64k.s2"),
            &mixed,
        ),
    ];
    for (name, stream, plain) in fixtures {
        for piece in [1, 3, 4096, stream.len()] {
            let decoded = decode_stream(stream, piece).unwrap_or_else(|error| {
                panic!("{name} in pieces of {piece}: {error}");
            });
            assert!(decoded == plain, "{name} in pieces of {piece} differs");
        }
    }
}

#[test]
fn go_fixtures_cover_every_chunk_type_the_go_writer_emits() {
    let types = |stream: &[u8]| -> Vec<u8> {
        let mut types: Vec<u8> = chunks(stream).iter().map(|chunk| chunk.0).collect();
        types.dedup();
        types
    };
    assert_eq!(
        types(include_bytes!("testdata/nats_traffic.uncompressed.s2")),
        [0xff, 0x01]
    );
    assert_eq!(
        types(include_bytes!("testdata/nats_traffic.padded.s2")),
        [0xff, 0x00, 0xfe]
    );
    assert_eq!(
        types(include_bytes!("testdata/mixed.blocks64k.s2")),
        [0xff, 0x00, 0x99]
    );
    assert_eq!(
        &include_bytes!("testdata/nats_traffic.snappy.s2")[4..10],
        b"sNaPpY"
    );
}

#[test]
fn random_data_round_trips_at_every_level_and_block_size() {
    let sizes = [0, 1, 31, 32, 33, 100, 4095, 4096, 4097, 65_553, 300_000];
    for (seed, &size) in sizes.iter().enumerate() {
        let inputs = [
            random_bytes(seed as u64, size),
            mixed_data(seed as u64, size),
            vec![b'x'; size],
        ];
        for input in &inputs {
            for level in LEVELS {
                for block_size in [MIN_BLOCK_SIZE, DEFAULT_BLOCK_SIZE] {
                    let stream = encode_stream(level, block_size, input);
                    let decoded = decode_stream(&stream, 1 << 16).expect("own stream decodes");
                    assert!(
                        decoded == *input,
                        "{level:?} size {size} block {block_size}"
                    );
                }
            }
        }
    }
}

#[test]
fn one_byte_pushes_decode_the_same_as_one_push() {
    let input = mixed_data(9, 20_000);
    let stream = encode_stream(S2Level::Better, MIN_BLOCK_SIZE, &input);
    assert_eq!(decode_stream(&stream, 1), Ok(input));
}

#[test]
fn far_repeats_in_a_four_megabyte_block_round_trip() {
    let random = random_bytes(3, 300_000);
    let mut input = random.clone();
    input.extend_from_slice(&mixed_data(4, 1 << 20));
    input.extend_from_slice(&random);
    input.resize(MAX_BLOCK_SIZE, b'-');
    for level in [S2Level::Fast, S2Level::Better] {
        let stream = encode_stream(level, MAX_BLOCK_SIZE, &input);
        assert_eq!(chunks(&stream).len(), 2, "identifier and one block");
        assert!(
            stream.len() < input.len() / 3,
            "{level:?}: {} bytes",
            stream.len()
        );
        assert!(decode_stream(&stream, 1 << 20) == Ok(input.clone()));
    }
}

#[test]
fn nats_traffic_compresses_about_as_well_as_go() {
    let go_default = include_bytes!("testdata/nats_traffic.default.s2").len();
    let go_better = include_bytes!("testdata/nats_traffic.better.s2").len();
    let fast = encode_stream(S2Level::Fast, DEFAULT_BLOCK_SIZE, NATS_TRAFFIC).len();
    let better = encode_stream(S2Level::Better, DEFAULT_BLOCK_SIZE, NATS_TRAFFIC).len();
    assert!(
        fast * 10 <= go_default * 12,
        "fast {fast} vs Go {go_default}"
    );
    assert!(
        better * 10 <= go_better * 12,
        "better {better} vs Go {go_better}"
    );
    assert!(better <= fast, "better {better} vs fast {fast}");
}

#[test]
fn traffic_flushed_per_batch_is_decodable_batch_by_batch() {
    let mut encoder = S2Encoder::new(S2Level::Fast);
    let mut decoder = S2Decoder::new();
    let mut wire = BytesMut::new();
    let mut plain = BytesMut::new();
    for batch in NATS_TRAFFIC.chunks(777) {
        encoder.write(batch, &mut wire);
        encoder.flush(&mut wire);
        assert_eq!(encoder.pending_len(), 0);
        decoder.push(&wire).expect("within limits");
        wire.clear();
        while let Decoded::Produced(_) = decoder.decode(&mut plain).expect("valid stream") {}
        assert_eq!(&plain[..], batch, "a flushed batch decodes completely");
        plain.clear();
    }
    assert_eq!(decoder.finish(), Ok(()));
}

#[test]
fn stream_identifier_is_written_once_before_the_first_chunk() {
    let mut encoder = S2Encoder::new(S2Level::Fast);
    let mut output = BytesMut::new();
    encoder.flush(&mut output);
    assert!(output.is_empty(), "an empty flush writes nothing");
    encoder.write(b"PING\r\n", &mut output);
    assert!(output.is_empty(), "a partial block waits for flush");
    encoder.flush(&mut output);
    encoder.write(b"PONG\r\n", &mut output);
    encoder.flush(&mut output);
    let chunks = chunks(&output);
    assert_eq!(chunks[0], (0xff, &b"S2sTwO"[..]));
    assert_eq!(chunks.len(), 3);
    assert!(chunks[1..].iter().all(|chunk| chunk.0 == 0x01));
}

#[test]
fn each_block_is_stored_in_the_smaller_chunk_form() {
    let noise = random_bytes(5, 10_000);
    let noise_stream = encode_stream(S2Level::Better, DEFAULT_BLOCK_SIZE, &noise);
    assert_eq!(
        chunks(&noise_stream)[1].0,
        0x01,
        "noise is stored uncompressed"
    );
    assert_eq!(noise_stream.len(), 10 + 8 + noise.len());
    let text_stream = encode_stream(S2Level::Fast, DEFAULT_BLOCK_SIZE, NATS_TRAFFIC);
    assert_eq!(chunks(&text_stream)[1].0, 0x00);
    let plain_stream = encode_stream(S2Level::Uncompressed, DEFAULT_BLOCK_SIZE, NATS_TRAFFIC);
    assert_eq!(chunks(&plain_stream)[1].0, 0x01);
    // The uncompressed level writes exactly what the Go writer's WriterUncompressed does.
    assert_eq!(
        plain_stream,
        include_bytes!("testdata/nats_traffic.uncompressed.s2")
    );
}

#[test]
fn write_emits_every_full_block_before_flush() {
    let mut encoder =
        S2Encoder::with_block_size(S2Level::Fast, MIN_BLOCK_SIZE).expect("valid block size");
    let mut output = BytesMut::new();
    let input = mixed_data(1, 10_000);
    encoder.write(&input[..100], &mut output);
    encoder.write(&input[100..], &mut output);
    assert_eq!(chunks(&output).len(), 3, "identifier and two full blocks");
    assert_eq!(encoder.pending_len(), 10_000 - 2 * MIN_BLOCK_SIZE);
    encoder.flush(&mut output);
    assert_eq!(decode_stream(&output, 100), Ok(input));
}

#[test]
fn block_sizes_outside_the_format_are_rejected() {
    for block_size in [0, MIN_BLOCK_SIZE - 1, MAX_BLOCK_SIZE + 1] {
        assert_eq!(
            S2Encoder::with_block_size(S2Level::Fast, block_size).map(|_| ()),
            Err(S2Error::InvalidBlockSize { block_size })
        );
    }
    assert!(S2Decoder::with_max_block_size(0).is_err());
    assert!(S2Decoder::with_max_block_size(MAX_BLOCK_SIZE + 1).is_err());
}

#[test]
fn each_decode_call_produces_at_most_one_block() {
    let zeros = vec![0u8; 3 * MAX_BLOCK_SIZE];
    let stream = encode_stream(S2Level::Fast, MAX_BLOCK_SIZE, &zeros);
    assert!(stream.len() < 1000, "{} bytes", stream.len());
    let mut decoder = S2Decoder::new();
    let mut output = BytesMut::new();
    decoder.push(&stream).expect("small input");
    for _ in 0..3 {
        assert_eq!(
            decoder.decode(&mut output),
            Ok(Decoded::Produced(MAX_BLOCK_SIZE))
        );
        output.clear();
    }
    assert_eq!(decoder.decode(&mut output), Ok(Decoded::NeedInput));
}

#[test]
fn smaller_decoder_limit_rejects_larger_blocks() {
    let stream = encode_stream(S2Level::Fast, 64 << 10, &vec![7u8; 64 << 10]);
    let mut decoder = S2Decoder::with_max_block_size(32 << 10).expect("valid limit");
    let mut output = BytesMut::new();
    decoder.push(&stream).expect("small input");
    assert_eq!(
        decoder.decode(&mut output),
        Err(S2Error::BlockTooLarge {
            length: 64 << 10,
            limit: 32 << 10
        })
    );
    assert!(output.is_empty());
}

#[test]
fn pushing_past_the_input_limit_is_rejected() {
    let mut decoder = S2Decoder::new();
    let limit = decoder.input_limit();
    let piece = vec![0u8; 1 << 20];
    // A padding chunk is skipped as it arrives, so it never fills the buffer.
    decoder
        .push(b"\xff\x06\x00\x00S2sTwO\xfe\xff\xff\xff")
        .expect("header");
    assert_eq!(decoder.decode(&mut BytesMut::new()), Ok(Decoded::NeedInput));
    for _ in 0..15 {
        decoder.push(&piece).expect("skipped padding");
    }
    assert_eq!(decoder.buffered_len(), 0);
    decoder
        .push(&piece)
        .expect("the rest of the padding and one byte");
    assert_eq!(decoder.buffered_len(), 1);
    // Undrained input is bounded.
    let mut decoder = S2Decoder::new();
    let mut pushed = 0;
    let error = loop {
        match decoder.push(&piece) {
            Ok(()) => pushed += piece.len(),
            Err(error) => break error,
        }
    };
    assert_eq!(
        error,
        S2Error::InputOverflow {
            buffered: pushed + piece.len(),
            limit
        }
    );
    assert!(pushed <= limit);
}

#[test]
fn errors_are_final() {
    let mut decoder = S2Decoder::new();
    let mut output = BytesMut::new();
    decoder.push(b"\x00\x05\x00\x00hello").expect("buffered");
    let error = S2Error::MissingStreamIdentifier { chunk_type: 0 };
    assert_eq!(decoder.decode(&mut output), Err(error.clone()));
    assert_eq!(decoder.push(b"\xff\x06\x00\x00S2sTwO"), Err(error.clone()));
    assert_eq!(decoder.decode(&mut output), Err(error.clone()));
    assert_eq!(decoder.finish(), Err(error));
}
