#![allow(clippy::unwrap_used, clippy::panic)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::Signer;

use super::nkey::test_keys::user_key;
use super::*;
use crate::options::{NkeyUser, User};

const NONCE: &str = "xGRvfWYwbT8vW0A";
/// The lowest cost bcrypt allows keeps the tests fast.
const TEST_COST: u32 = 4;

fn user(name: &str, password: &str) -> Credentials {
    Credentials {
        user: name.into(),
        password: password.into(),
        ..Credentials::default()
    }
}

fn token(text: &str) -> Credentials {
    Credentials {
        token: text.into(),
        ..Credentials::default()
    }
}

fn publish_only(subject: &str) -> Permissions {
    Permissions {
        publish: SubjectPermission {
            allow: Some(vec![PermissionEntry::parse(subject).unwrap()]),
            deny: Vec::new(),
        },
        ..Permissions::default()
    }
}

fn users(list: &[(&str, &str, Option<Permissions>)]) -> Authorization {
    Authorization {
        users: list
            .iter()
            .map(|(name, password, permissions)| User {
                user: name.to_string(),
                password: password.to_string(),
                permissions: permissions.clone(),
                account: None,
                max_connections: None,
            })
            .collect(),
        ..Authorization::default()
    }
}

fn refused(authenticator: &Authenticator, credentials: &Credentials) -> AuthError {
    authenticator
        .authenticate(credentials, Some(NONCE))
        .expect_err("credentials should be refused")
}

#[test]
fn without_authorization_everyone_is_let_in() {
    let authenticator = Authenticator::new(&Authorization::default(), None);
    assert!(!authenticator.is_required());
    assert!(!authenticator.needs_nonce());
    for credentials in [Credentials::default(), user("any", "thing"), token("t")] {
        let authenticated = authenticator.authenticate(&credentials, None).unwrap();
        assert_eq!(authenticated.method, AuthenticationMethod::None);
        assert_eq!(authenticated.permissions, None);
        assert!(authenticated.permission_checker().is_none());
    }
}

#[test]
fn a_token_must_match() {
    let authorization = Authorization {
        token: Some("s3cr3t".into()),
        ..Authorization::default()
    };
    let authenticator = Authenticator::new(&authorization, None);
    assert!(authenticator.is_required());
    let authenticated = authenticator.authenticate(&token("s3cr3t"), None).unwrap();
    assert_eq!(authenticated.method, AuthenticationMethod::Token);
    assert_eq!(authenticated.name, "");
    assert_eq!(
        refused(&authenticator, &token("wrong")),
        AuthError::WrongToken
    );
    assert_eq!(
        refused(&authenticator, &Credentials::default()),
        AuthError::MissingCredentials
    );
    // A user and password are not a token.
    assert_eq!(
        refused(&authenticator, &user("s3cr3t", "s3cr3t")),
        AuthError::MissingCredentials
    );
}

#[test]
fn a_token_may_be_a_bcrypt_hash() {
    let authorization = Authorization {
        token: Some(bcrypt::hash("s3cr3t", TEST_COST).unwrap()),
        ..Authorization::default()
    };
    let authenticator = Authenticator::new(&authorization, None);
    assert!(authenticator.may_be_slow());
    assert!(authenticator.authenticate(&token("s3cr3t"), None).is_ok());
    assert_eq!(
        refused(&authenticator, &token("wrong")),
        AuthError::WrongToken
    );
}

#[test]
fn the_single_user_needs_its_name_and_password_and_gets_no_permissions() {
    let authorization = Authorization {
        user: Some("derek".into()),
        password: Some("porkchop".into()),
        // nats-server ignores `authorization { permissions }` for the single user.
        default_permissions: Some(publish_only("x")),
        ..Authorization::default()
    };
    let authenticator = Authenticator::new(&authorization, None);
    assert!(!authenticator.may_be_slow());
    let authenticated = authenticator
        .authenticate(&user("derek", "porkchop"), None)
        .unwrap();
    assert_eq!(authenticated.name, "derek");
    assert_eq!(authenticated.method, AuthenticationMethod::SingleUser);
    assert_eq!(authenticated.permissions, None);
    assert_eq!(
        refused(&authenticator, &user("derek", "wrong")),
        AuthError::WrongPassword {
            user: "derek".into()
        }
    );
    assert_eq!(
        refused(&authenticator, &user("other", "porkchop")),
        AuthError::UnknownUser {
            user: "other".into()
        }
    );
    assert_eq!(
        refused(&authenticator, &Credentials::default()),
        AuthError::MissingCredentials
    );
}

#[test]
fn users_authenticate_with_plain_or_bcrypt_passwords() {
    let hash = bcrypt::hash("bob-pass", TEST_COST).unwrap();
    let authenticator = Authenticator::new(
        &users(&[("alice", "alice-pass", None), ("bob", &hash, None)]),
        None,
    );
    assert!(authenticator.may_be_slow());
    let alice = authenticator
        .authenticate(&user("alice", "alice-pass"), None)
        .unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.method, AuthenticationMethod::User);
    let bob = authenticator
        .authenticate(&user("bob", "bob-pass"), None)
        .unwrap();
    assert_eq!(bob.name, "bob");
    assert_eq!(
        refused(&authenticator, &user("bob", &hash)),
        AuthError::WrongPassword { user: "bob".into() }
    );
    assert_eq!(
        refused(&authenticator, &user("alice", "bob-pass")),
        AuthError::WrongPassword {
            user: "alice".into()
        }
    );
    assert_eq!(
        refused(&authenticator, &user("carol", "alice-pass")),
        AuthError::UnknownUser {
            user: "carol".into()
        }
    );
    assert_eq!(
        refused(&authenticator, &Credentials::default()),
        AuthError::MissingCredentials
    );
    assert_eq!(
        refused(&authenticator, &token("alice-pass")),
        AuthError::UnknownUser { user: "".into() }
    );
}

#[test]
fn users_get_their_own_permissions_else_the_defaults() {
    let mut authorization = users(&[
        ("admin", "pw", Some(publish_only(">"))),
        ("joe", "pw", None),
    ]);
    authorization.default_permissions = Some(publish_only("SANDBOX.*"));
    let authenticator = Authenticator::new(&authorization, None);
    let admin = authenticator
        .authenticate(&user("admin", "pw"), None)
        .unwrap();
    assert_eq!(admin.permissions.as_deref(), Some(&publish_only(">")));
    let joe = authenticator
        .authenticate(&user("joe", "pw"), None)
        .unwrap();
    assert_eq!(joe.permissions.as_deref(), Some(&publish_only("SANDBOX.*")));
    let mut checker = joe.permission_checker().unwrap();
    assert!(checker.publish_allowed(b"SANDBOX.foo"));
    assert!(!checker.publish_allowed(b"SANDBOX.foo.bar"));
}

#[test]
fn no_auth_user_binds_connections_without_credentials() {
    let authorization = users(&[
        ("guest", "unused", Some(publish_only("public.>"))),
        ("alice", "pw", None),
    ]);
    let authenticator = Authenticator::new(&authorization, Some("guest"));
    let guest = authenticator
        .authenticate(&Credentials::default(), None)
        .unwrap();
    assert_eq!(guest.name, "guest");
    assert_eq!(guest.method, AuthenticationMethod::NoAuthUser);
    assert_eq!(
        guest.permissions.as_deref(),
        Some(&publish_only("public.>"))
    );
    // Credentials that are presented are checked, never replaced by the no_auth_user.
    assert_eq!(
        refused(&authenticator, &user("alice", "wrong")),
        AuthError::WrongPassword {
            user: "alice".into()
        }
    );
    assert!(authenticator
        .authenticate(&user("alice", "pw"), None)
        .is_ok());
    assert!(authenticator
        .authenticate(
            &Credentials {
                password: "unused".into(),
                ..Credentials::default()
            },
            None
        )
        .is_err());
}

#[test]
fn no_auth_user_works_with_a_bcrypt_password() {
    let hash = bcrypt::hash("pw", TEST_COST).unwrap();
    let authenticator = Authenticator::new(&users(&[("guest", &hash, None)]), Some("guest"));
    let guest = authenticator
        .authenticate(&Credentials::default(), None)
        .unwrap();
    assert_eq!(guest.name, "guest");
}

fn nkey_authorization(public: &str, permissions: Option<Permissions>) -> Authorization {
    Authorization {
        nkey_users: vec![NkeyUser {
            nkey: public.to_string(),
            permissions,
            account: None,
            max_connections: None,
        }],
        ..users(&[("alice", "pw", None)])
    }
}

fn nkey_credentials(public: &str, signature: String) -> Credentials {
    Credentials {
        nkey: public.to_string(),
        signature,
        ..Credentials::default()
    }
}

#[test]
fn an_nkey_user_signs_the_nonce() {
    let (signing, public) = user_key(1);
    let mut authorization = nkey_authorization(&public, None);
    authorization.default_permissions = Some(publish_only("nkey.>"));
    assert!(needs_nonce(&authorization));
    let authenticator = Authenticator::new(&authorization, None);
    assert!(authenticator.needs_nonce());
    let signature = URL_SAFE_NO_PAD.encode(signing.sign(NONCE.as_bytes()).to_bytes());
    let authenticated = authenticator
        .authenticate(&nkey_credentials(&public, signature), Some(NONCE))
        .unwrap();
    assert_eq!(authenticated.name, public);
    assert_eq!(authenticated.method, AuthenticationMethod::Nkey);
    assert_eq!(
        authenticated.permissions.as_deref(),
        Some(&publish_only("nkey.>")),
        "default permissions apply to nkey users too"
    );
    // Standard base64 is accepted as well.
    let signature = STANDARD.encode(signing.sign(NONCE.as_bytes()).to_bytes());
    assert!(authenticator
        .authenticate(&nkey_credentials(&public, signature), Some(NONCE))
        .is_ok());
    // Password users keep working beside nkey users.
    assert!(authenticator
        .authenticate(&user("alice", "pw"), None)
        .is_ok());
}

#[test]
fn nkey_authentication_is_refused_without_a_valid_signature_of_this_nonce() {
    let (signing, public) = user_key(2);
    let (stranger_signing, stranger) = user_key(3);
    let authenticator = Authenticator::new(&nkey_authorization(&public, None), None);
    let sign = |key: &ed25519_dalek::SigningKey, nonce: &str| {
        URL_SAFE_NO_PAD.encode(key.sign(nonce.as_bytes()).to_bytes())
    };
    assert_eq!(
        refused(
            &authenticator,
            &nkey_credentials(&public, sign(&signing, "another nonce"))
        ),
        AuthError::Nkey {
            nkey: public.clone(),
            source: NkeyError::SignatureMismatch
        }
    );
    assert_eq!(
        refused(
            &authenticator,
            &nkey_credentials(&public, sign(&stranger_signing, NONCE))
        ),
        AuthError::Nkey {
            nkey: public.clone(),
            source: NkeyError::SignatureMismatch
        }
    );
    assert_eq!(
        refused(
            &authenticator,
            &nkey_credentials(&stranger, sign(&stranger_signing, NONCE))
        ),
        AuthError::UnknownNkey {
            nkey: stranger.clone()
        }
    );
    assert_eq!(
        refused(&authenticator, &nkey_credentials(&public, String::new())),
        AuthError::MissingSignature {
            nkey: public.clone()
        }
    );
    assert_eq!(
        authenticator
            .authenticate(&nkey_credentials(&public, sign(&signing, NONCE)), None)
            .unwrap_err(),
        AuthError::MissingNonce {
            nkey: public.clone()
        }
    );
}

#[test]
fn nkey_users_alone_need_an_nkey() {
    let (_, public) = user_key(4);
    let authorization = Authorization {
        nkey_users: vec![NkeyUser {
            nkey: public,
            permissions: None,
            account: None,
            max_connections: None,
        }],
        ..Authorization::default()
    };
    assert!(authorization.is_required());
    let authenticator = Authenticator::new(&authorization, None);
    assert!(authenticator.is_required());
    assert!(!authenticator.may_be_slow());
    assert_eq!(
        refused(&authenticator, &Credentials::default()),
        AuthError::MissingCredentials
    );
    assert_eq!(
        refused(&authenticator, &user("alice", "pw")),
        AuthError::UnknownUser {
            user: "alice".into()
        }
    );
}

#[test]
fn secrets_stay_out_of_debug_output_and_errors() {
    let credentials = Credentials {
        user: "alice".into(),
        password: "hunter2".into(),
        token: "tok3n".into(),
        nkey: "UABC".into(),
        signature: "c2lnbmF0dXJl".into(),
        certificate: None,
    };
    let debug = format!("{credentials:?}");
    for secret in ["hunter2", "tok3n", "c2lnbmF0dXJl"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(debug.contains("alice"));
    let authorization = Authorization {
        user: Some("alice".into()),
        password: Some("hunter2".into()),
        token: Some("tok3n".into()),
        ..users(&[("bob", "b0bpass", None)])
    };
    let debug = format!(
        "{authorization:?} {:?}",
        Authenticator::new(&authorization, None)
    );
    for secret in ["hunter2", "tok3n", "b0bpass"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    let authenticator = Authenticator::new(&users(&[("bob", "b0bpass", None)]), None);
    let error = refused(&authenticator, &user("bob", "hunter2"));
    assert!(!error.to_string().contains("hunter2"));
    assert_eq!(error.client_message(), "Authorization Violation");
}

#[test]
fn credentials_come_from_connect() {
    let connect: ConnectOptions = serde_json::from_str(
        r#"{"user":"u","pass":"p","auth_token":"t","nkey":"UKEY","sig":"c2ln"}"#,
    )
    .unwrap();
    let credentials = Credentials::from(&connect);
    assert_eq!(
        credentials,
        Credentials {
            user: "u".into(),
            password: "p".into(),
            token: "t".into(),
            nkey: "UKEY".into(),
            signature: "c2ln".into(),
            certificate: None,
        }
    );
}

fn with_certificate(subject: &str, dns_names: &[&str]) -> Credentials {
    Credentials {
        certificate: Some(Arc::new(certificate::CertificateIdentity {
            dns_names: dns_names.iter().map(|name| (*name).to_string()).collect(),
            subject: certificate::DistinguishedName::parse(subject).unwrap(),
            ..certificate::CertificateIdentity::default()
        })),
        ..Credentials::default()
    }
}

#[test]
fn certificate_mapping_takes_the_user_from_the_certificate() {
    let authorization = users(&[
        ("CN=alice,O=Example", "", Some(publish_only("a.>"))),
        ("bob.example.com", "", None),
        ("carol", "pw", None),
    ]);
    let mapping = Authenticator::new(&authorization, None).with_certificate_mapping(true, true);
    let alice = mapping
        .authenticate(&with_certificate("CN=alice,O=Example", &[]), None)
        .unwrap();
    assert_eq!(alice.name, "CN=alice,O=Example");
    assert_eq!(alice.method, AuthenticationMethod::Certificate);
    assert!(alice.permissions.is_some());
    let bob = mapping
        .authenticate(&with_certificate("CN=bob", &["bob.example.com"]), None)
        .unwrap();
    assert_eq!(bob.name, "bob.example.com");
    assert!(matches!(
        refused(&mapping, &with_certificate("CN=mallory", &[])),
        AuthError::UnmappedCertificate { subject } if subject == "CN=mallory"
    ));
    // Without a certificate, user and password do not stand in for it.
    assert_eq!(
        refused(&mapping, &user("carol", "pw")),
        AuthError::NoCertificate
    );
}

#[test]
fn a_user_without_a_password_is_certificate_only_when_some_listener_maps() {
    let authorization = users(&[("CN=alice", "", None), ("carol", "pw", None)]);
    let elsewhere = Authenticator::new(&authorization, None).with_certificate_mapping(false, true);
    assert_eq!(
        refused(&elsewhere, &user("CN=alice", "")),
        AuthError::CertificateRequired {
            user: "CN=alice".into()
        }
    );
    assert!(elsewhere.authenticate(&user("carol", "pw"), None).is_ok());
    let nowhere = Authenticator::new(&authorization, None);
    assert!(nowhere.authenticate(&user("CN=alice", ""), None).is_ok());
}
