#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};

use super::*;

fn certificate(subject: &[(DnType, &str)], alternative_names: Vec<SanType>) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in subject {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params.subject_alt_names = alternative_names;
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn map(identity: &CertificateIdentity, users: &[&str]) -> Option<String> {
    let known: HashSet<&str> = users.iter().copied().collect();
    identity.map_user(users.iter().copied(), |name| known.contains(name))
}

const SUBJECT: &[(DnType, &str)] = &[
    (DnType::CountryName, "US"),
    (DnType::OrganizationName, "Example"),
    (DnType::OrganizationalUnitName, "eng"),
    (DnType::CommonName, "alice"),
];

#[test]
fn reads_alternative_names_and_the_subject() {
    let der = certificate(
        SUBJECT,
        vec![
            SanType::Rfc822Name("alice@example.com".try_into().unwrap()),
            SanType::DnsName("alice.example.com".try_into().unwrap()),
            SanType::URI("spiffe://example/alice".try_into().unwrap()),
        ],
    );
    let identity = CertificateIdentity::from_der(&der).unwrap();
    assert_eq!(identity.emails, ["alice@example.com"]);
    assert_eq!(identity.dns_names, ["alice.example.com"]);
    assert_eq!(identity.uris, ["spiffe://example/alice"]);
    assert_eq!(
        identity.subject.to_string(),
        "CN=alice,OU=eng,O=Example,C=US"
    );
    assert!(CertificateIdentity::from_der(b"not a certificate").is_err());
}

#[test]
fn an_alternative_name_that_is_a_user_wins_in_nats_server_order() {
    let der = certificate(
        SUBJECT,
        vec![
            SanType::DnsName("alice.example.com".try_into().unwrap()),
            SanType::Rfc822Name("alice@example.com".try_into().unwrap()),
        ],
    );
    let identity = CertificateIdentity::from_der(&der).unwrap();
    let users = [
        "alice.example.com",
        "alice@example.com",
        "CN=alice,OU=eng,O=Example,C=US",
    ];
    assert_eq!(map(&identity, &users).as_deref(), Some("alice@example.com"));
    assert_eq!(
        map(&identity, &users[..1]).as_deref(),
        Some("alice.example.com")
    );
}

#[test]
fn the_subject_matches_a_distinguished_name_user() {
    let identity = CertificateIdentity::from_der(&certificate(SUBJECT, Vec::new())).unwrap();
    // Same order, other spacing and case of the attribute names.
    assert_eq!(
        map(&identity, &["bob", "cn=alice, ou=eng, o=Example, c=US"]).as_deref(),
        Some("cn=alice, ou=eng, o=Example, c=US")
    );
    // An exact match is preferred to a reordered one.
    let users = [
        "C=US,O=Example,OU=eng,CN=alice",
        "CN=alice,OU=eng,O=Example,C=US",
    ];
    assert_eq!(
        map(&identity, &users).as_deref(),
        Some("CN=alice,OU=eng,O=Example,C=US")
    );
    assert_eq!(
        map(&identity, &users[..1]).as_deref(),
        Some("C=US,O=Example,OU=eng,CN=alice")
    );
    // Values compare exactly; a missing or extra attribute is another name.
    assert_eq!(map(&identity, &["CN=Alice,OU=eng,O=Example,C=US"]), None);
    assert_eq!(map(&identity, &["CN=alice,OU=eng,O=Example"]), None);
    assert_eq!(map(&identity, &["alice"]), None);
}

#[test]
fn distinguished_names_unescape_and_keep_multi_valued_rdns_together() {
    let name = DistinguishedName::parse(r"CN=Smith\, John+UID=js,O=A\2cB").unwrap();
    assert_eq!(name.to_string(), r"CN=Smith\, John+UID=js,O=A\,B");
    let reordered = DistinguishedName::parse(r"UID=js+CN=Smith\, John,O=A\,B").unwrap();
    assert_eq!(name, reordered);
    assert!(DistinguishedName::parse("plain-user").is_none());
    assert!(DistinguishedName::parse("a b=c").is_none());
}
