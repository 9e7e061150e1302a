//! Arbitrary CONNECT arguments: either valid options or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_broker::protocol::ConnectOptions;

fuzz_target!(|data: &[u8]| {
    if let Ok(options) = ConnectOptions::parse(data) {
        let _ = options.protocol;
    }
});
