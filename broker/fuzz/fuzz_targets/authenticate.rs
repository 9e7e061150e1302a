//! Arbitrary CONNECT JSON against an authenticator with password, bcrypt-less and NKEY users:
//! it is accepted or refused, never a panic, and a refusal never echoes a secret. The same
//! bytes go through the `verify_and_map` readers (a DER certificate, a distinguished name),
//! which must refuse or read them, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_broker::auth::certificate::{CertificateIdentity, DistinguishedName};
use tern_broker::auth::{Authenticator, Credentials};
use tern_broker::options::{Authorization, NkeyUser, User};
use tern_broker::protocol::ConnectOptions;

/// A valid user public NKEY (random, made for this target), so the NKEY path is reachable.
const NKEY: &str = "UBZRTP7JM54GKKFWALV65TO2CSV7HVRQUSV3XT6T6DTERDHVCAX7QAP2";

fuzz_target!(|data: &[u8]| {
    let _ = CertificateIdentity::from_der(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(name) = DistinguishedName::parse(text) {
            let _ = name.to_string();
        }
    }
    let Ok(connect) = ConnectOptions::parse(data) else {
        return;
    };
    let authorization = Authorization {
        users: vec![User {
            user: "alice".into(),
            password: "secret-password".into(),
            permissions: None,
            account: None,
            max_connections: None,
        }],
        nkey_users: vec![NkeyUser {
            nkey: NKEY.into(),
            permissions: None,
            account: None,
            max_connections: None,
        }],
        ..Authorization::default()
    };
    let authenticator = Authenticator::new(&authorization, Some("alice"));
    let credentials = Credentials::from(&connect);
    if let Err(error) = authenticator.authenticate(&credentials, Some("fuzz-nonce-1234")) {
        let text = error.to_string();
        assert!(!text.contains("secret-password"));
        if !connect.sig.is_empty() {
            assert!(!text.contains(&connect.sig));
        }
    }
});
