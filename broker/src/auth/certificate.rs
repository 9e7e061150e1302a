//! The identity in a client certificate, and how `verify_and_map` picks a user from it.
//!
//! Contract of [`CertificateIdentity::from_der`]: reads the leaf certificate's e-mail
//! addresses, DNS names and URIs (subject alternative names) and its subject distinguished
//! name; a certificate that does not parse is an error, never a partial identity.
//!
//! Contract of [`CertificateIdentity::map_user`], in nats-server's order: the first e-mail
//! address, then DNS name, then URI that is a user name wins; then a user name that, read as a
//! distinguished name (RFC 4514: `CN=alice,OU=eng,O=Example`), has the certificate subject's
//! attributes in the same order; then one with the same attributes in another order; last, the
//! subject written out (RFC 4514 order, known attribute names) as a user name. Attribute names
//! compare without case (`cn` is `CN`), values exactly, after RFC 4514 unescaping and with the
//! spaces around separators trimmed.

use std::fmt;

use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// Why a peer certificate gave no identity.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the client certificate does not parse: {0}")]
    Malformed(String),
}

/// One attribute of a distinguished name: a type (upper-case short name, or a dotted OID)
/// and its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Attribute {
    kind: String,
    value: String,
}

/// A distinguished name, most significant RDN last as written in RFC 4514 (the subject's
/// last RDN first). Each RDN holds its attributes sorted, so `+` order does not matter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DistinguishedName(Vec<Vec<Attribute>>);

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateIdentity {
    pub emails: Vec<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    pub subject: DistinguishedName,
}

/// Short names of the attribute types nats-server's DN matching knows, by OID.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.17", "POSTALCODE"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "EMAILADDRESS"),
];

/// Other spellings of attribute types in user names.
const ATTRIBUTE_ALIASES: &[(&str, &str)] = &[("E", "EMAILADDRESS"), ("EMAIL", "EMAILADDRESS")];

fn attribute_name(oid: &str) -> String {
    ATTRIBUTE_NAMES
        .iter()
        .find(|(known, _)| *known == oid)
        .map_or_else(|| oid.to_string(), |(_, name)| (*name).to_string())
}

fn normalized_kind(kind: &str) -> String {
    let upper = kind.trim().to_ascii_uppercase();
    let upper = ATTRIBUTE_ALIASES
        .iter()
        .find(|(alias, _)| *alias == upper)
        .map_or(upper, |(_, name)| (*name).to_string());
    // A dotted OID that has a short name is the short name.
    attribute_name(&upper)
}

impl CertificateIdentity {
    /// Reads a DER certificate (the first of the peer's chain).
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let malformed =
            |error: x509_cert::der::Error| CertificateError::Malformed(error.to_string());
        let certificate = Certificate::from_der(der).map_err(malformed)?;
        let tbs = &certificate.tbs_certificate;
        let mut identity = Self::default();
        let subject_alt_name = x509_cert::der::oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME;
        for extension in tbs.extensions.iter().flatten() {
            if extension.extn_id != subject_alt_name {
                continue;
            }
            let names =
                SubjectAltName::from_der(extension.extn_value.as_bytes()).map_err(malformed)?;
            for name in names.0 {
                match name {
                    GeneralName::Rfc822Name(email) => identity.emails.push(email.to_string()),
                    GeneralName::DnsName(dns) => identity.dns_names.push(dns.to_string()),
                    GeneralName::UniformResourceIdentifier(uri) => {
                        identity.uris.push(uri.to_string());
                    }
                    _ => {}
                }
            }
        }
        let mut names = Vec::with_capacity(tbs.subject.0.len());
        for rdn in tbs.subject.0.iter().rev() {
            let mut attributes: Vec<Attribute> = rdn
                .0
                .iter()
                .map(|attribute| Attribute {
                    kind: attribute_name(&attribute.oid.to_string()),
                    value: attribute_text(&attribute.value),
                })
                .collect();
            attributes.sort();
            names.push(attributes);
        }
        identity.subject = DistinguishedName(names);
        Ok(identity)
    }

    /// The user `verify_and_map` picks among the users `is_user` knows (see the module docs).
    pub fn map_user<'a>(
        &self,
        users: impl Iterator<Item = &'a str> + Clone,
        is_user: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let alternative = self
            .emails
            .iter()
            .chain(&self.dns_names)
            .chain(&self.uris)
            .find(|name| is_user(name));
        if let Some(name) = alternative {
            return Some(name.clone());
        }
        if self.subject.0.is_empty() {
            return None;
        }
        let parsed: Vec<(&str, DistinguishedName)> = users
            .filter_map(|user| DistinguishedName::parse(user).map(|name| (user, name)))
            .collect();
        if let Some((user, _)) = parsed.iter().find(|(_, name)| *name == self.subject) {
            return Some((*user).to_string());
        }
        if let Some((user, _)) = parsed
            .iter()
            .find(|(_, name)| name.same_names_in_any_order(&self.subject))
        {
            return Some((*user).to_string());
        }
        let written = self.subject.to_string();
        is_user(&written).then_some(written)
    }
}

/// The text of an attribute value: the string types as they are, anything else as `#` and
/// the hex of its DER encoding (as RFC 4514 writes values it cannot show).
fn attribute_text(value: &x509_cert::der::Any) -> String {
    let text = match value.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(value)
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::PrintableString => PrintableStringRef::try_from(value)
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::Ia5String => Ia5StringRef::try_from(value)
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::TeletexString => TeletexStringRef::try_from(value)
            .ok()
            .map(|s| s.as_str().to_string()),
        Tag::BmpString => {
            let bytes = value.value();
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    };
    text.unwrap_or_else(|| {
        let mut encoded = Vec::new();
        let _ = x509_cert::der::Encode::encode_to_vec(value, &mut encoded);
        let hex: String = encoded.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("#{hex}")
    })
}

impl DistinguishedName {
    /// Reads an RFC 4514 string; `None` when it is not one (a plain user name, say).
    pub fn parse(text: &str) -> Option<Self> {
        let mut names = Vec::new();
        for rdn in split_unescaped(text, &[',', ';']) {
            let mut attributes = Vec::new();
            for pair in split_unescaped(rdn, &['+']) {
                let (kind, value) = pair.split_once('=')?;
                let kind = kind.trim();
                let valid_kind = !kind.is_empty()
                    && kind
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if !valid_kind {
                    return None;
                }
                attributes.push(Attribute {
                    kind: normalized_kind(kind),
                    value: unescape(value.trim())?,
                });
            }
            attributes.sort();
            names.push(attributes);
        }
        (!names.is_empty()).then_some(Self(names))
    }

    /// The same RDNs, whatever their order.
    fn same_names_in_any_order(&self, other: &Self) -> bool {
        if self.0.len() != other.0.len() {
            return false;
        }
        let mut left = self.0.clone();
        let mut right = other.0.clone();
        left.sort();
        right.sort();
        left == right
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, rdn) in self.0.iter().enumerate() {
            if index > 0 {
                formatter.write_str(",")?;
            }
            for (position, attribute) in rdn.iter().enumerate() {
                if position > 0 {
                    formatter.write_str("+")?;
                }
                write!(formatter, "{}={}", attribute.kind, escape(&attribute.value))?;
            }
        }
        Ok(())
    }
}

/// Splits at separators not preceded by a backslash escape.
fn split_unescaped<'a>(text: &'a str, separators: &[char]) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (index, character) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if separators.contains(&character) {
            parts.push(&text[start..index]);
            start = index + character.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Undoes RFC 4514 escapes: `\` before a special character, or two hex digits.
fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let raw = text.as_bytes();
    let mut index = 0;
    while index < raw.len() {
        if raw[index] != b'\\' {
            bytes.push(raw[index]);
            index += 1;
            continue;
        }
        let next = *raw.get(index + 1)?;
        let hex = |byte: u8| char::from(byte).to_digit(16);
        match (hex(next), raw.get(index + 2).and_then(|byte| hex(*byte))) {
            (Some(high), Some(low)) => {
                bytes.push(u8::try_from(high * 16 + low).ok()?);
                index += 3;
            }
            _ => {
                bytes.push(next);
                index += 2;
            }
        }
    }
    String::from_utf8(bytes).ok()
}

fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (index, character) in value.chars().enumerate() {
        let special = matches!(character, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (index == 0 && matches!(character, '#' | ' '))
            || (index == last && character == ' ');
        if special {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
#[path = "certificate_tests.rs"]
mod tests;
