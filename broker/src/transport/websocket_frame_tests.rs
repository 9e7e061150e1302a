#![allow(clippy::unwrap_used)]

use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn server(compression: bool) -> FrameDecoder {
    FrameDecoder::new(DecoderSettings {
        role: Role::Server,
        accept_unmasked: false,
        compression,
        max_message_size: 1024,
    })
}

fn frame(opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, compressed: bool) -> BytesMut {
    let mut bytes = BytesMut::new();
    encode_frame(&mut bytes, opcode, payload, mask, compressed);
    bytes
}

fn feed(decoder: &mut FrameDecoder, bytes: &[u8]) -> Result<Vec<Incoming>, FrameError> {
    decoder.buffer().extend_from_slice(bytes);
    let mut out = Vec::new();
    while let Some(incoming) = decoder.decode()? {
        out.push(incoming);
    }
    Ok(out)
}

#[test]
fn rfc_6455_examples_decode() {
    // §5.7: a single-frame masked text message "Hello".
    let masked = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut decoder = server(false);
    assert_eq!(
        feed(&mut decoder, &masked).unwrap(),
        [Incoming::Data(Bytes::from_static(b"Hello"))]
    );
    assert_eq!(
        &frame(Opcode::Text, b"Hello", Some(MASK), false)[..],
        masked
    );
    // The unmasked form, as a server writes it.
    assert_eq!(
        &frame(Opcode::Text, b"Hello", None, false)[..],
        [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
}

#[test]
fn bytes_may_arrive_one_at_a_time_and_fragments_join() {
    let mut bytes = BytesMut::new();
    let mut first = frame(Opcode::Binary, b"PI", Some(MASK), false);
    first[0] &= 0x7f; // not final
    bytes.extend_from_slice(&first);
    bytes.extend_from_slice(&frame(Opcode::Ping, b"hi", Some(MASK), false));
    bytes.extend_from_slice(&frame(Opcode::Continuation, b"NG\r\n", Some(MASK), false));
    let mut decoder = server(false);
    let mut out = Vec::new();
    for byte in bytes.iter() {
        out.extend(feed(&mut decoder, &[*byte]).unwrap());
    }
    assert_eq!(
        out,
        [
            Incoming::Ping(Bytes::from_static(b"hi")),
            Incoming::Data(Bytes::from_static(b"PING\r\n")),
        ]
    );
}

#[test]
fn lengths_use_the_16_and_64_bit_forms() {
    for size in [125, 126, 65_535, 65_536] {
        let payload = vec![b'x'; size];
        let encoded = frame(Opcode::Binary, &payload, None, false);
        let expected_header = match size {
            0..=125 => 2,
            126..=65_535 => 4,
            _ => 10,
        };
        assert_eq!(encoded.len(), size + expected_header);
        let mut decoder = FrameDecoder::new(DecoderSettings {
            role: Role::Client,
            accept_unmasked: false,
            compression: false,
            max_message_size: 1 << 20,
        });
        assert_eq!(
            feed(&mut decoder, &encoded).unwrap(),
            [Incoming::Data(Bytes::from(payload))]
        );
    }
}

#[test]
fn compressed_messages_round_trip_each_on_its_own() {
    let mut compressor = Compressor::default();
    let mut decoder = server(true);
    for message in [&b"MSG orders.eu 1 600\r\n"[..], &[b'a'; 600][..], b""] {
        let mut deflated = Vec::new();
        compressor.compress(message, &mut deflated);
        let bytes = frame(Opcode::Binary, &deflated, Some(MASK), true);
        assert_eq!(
            feed(&mut decoder, &bytes).unwrap(),
            [Incoming::Data(Bytes::copy_from_slice(message))]
        );
    }
    let mut deflated = Vec::new();
    compressor.compress(&[b'a'; 600], &mut deflated);
    assert!(deflated.len() < 100, "600 equal bytes deflate well");
}

#[test]
fn stored_blocks_are_a_valid_message() {
    let mut stored_form = Vec::new();
    stored(b"hello", &mut stored_form);
    let bytes = frame(Opcode::Binary, &stored_form, Some(MASK), true);
    assert_eq!(
        feed(&mut server(true), &bytes).unwrap(),
        [Incoming::Data(Bytes::from_static(b"hello"))]
    );
}

#[test]
fn protocol_errors_carry_their_close_codes() {
    let code =
        |bytes: &[u8], compression: bool| feed(&mut server(compression), bytes).unwrap_err().code;
    // Unmasked frame to a server.
    assert_eq!(code(&frame(Opcode::Binary, b"x", None, false), false), 1002);
    // RSV1 without permessage-deflate.
    assert_eq!(
        code(&frame(Opcode::Binary, b"x", Some(MASK), true), false),
        1002
    );
    // Compressed control frame.
    assert_eq!(
        code(&frame(Opcode::Ping, b"x", Some(MASK), true), true),
        1002
    );
    // Unknown opcode 3.
    assert_eq!(code(&[0x83, 0x80, 0, 0, 0, 0], false), 1002);
    // Continuation without a message.
    assert_eq!(
        code(&frame(Opcode::Continuation, b"x", Some(MASK), false), false),
        1002
    );
    // Over the size bound, by header alone.
    assert_eq!(
        code(&frame(Opcode::Binary, &[0; 2000], Some(MASK), false), false),
        1009
    );
    // Garbage marked compressed.
    assert_eq!(
        code(&frame(Opcode::Binary, &[0xff; 8], Some(MASK), true), true),
        1007
    );
}

#[test]
fn a_bomb_is_stopped_at_the_message_bound() {
    let mut compressor = Compressor::default();
    let mut deflated = Vec::new();
    compressor.compress(&vec![0u8; 100_000], &mut deflated);
    assert!(deflated.len() < 1024);
    let bytes = frame(Opcode::Binary, &deflated, Some(MASK), true);
    assert_eq!(feed(&mut server(true), &bytes).unwrap_err().code, 1009);
}

#[test]
fn control_frames_decode() {
    let mut decoder = server(false);
    let mut bytes = frame(Opcode::Close, &1001u16.to_be_bytes(), Some(MASK), false);
    bytes.extend_from_slice(&frame(Opcode::Pong, b"", Some(MASK), false));
    bytes.extend_from_slice(&frame(Opcode::Close, b"", Some(MASK), false));
    assert_eq!(
        feed(&mut decoder, &bytes).unwrap(),
        [
            Incoming::Close(Some(1001)),
            Incoming::Pong,
            Incoming::Close(None)
        ]
    );
}
