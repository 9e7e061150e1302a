//! Parses arbitrary text as a config file: it may be rejected, but with an error that names a
//! position, and never with a panic or a hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tern_broker::config::{self, MemorySources};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources = MemorySources::new().with_file("included.conf", "port: 4222\n");
    let _ = config::load_str(text, Path::new("fuzz.conf"), &sources);
});
