//! User NKEYs: decoding a user's public key and verifying its signature of the INFO nonce.
//!
//! Contract:
//! - A user public NKEY is 56 characters of base32 (RFC 4648 alphabet, no padding) encoding
//!   35 bytes: the prefix byte `20 << 3` (which makes the text start with `U`), the 32-byte
//!   ed25519 public key, and a CRC-16/XMODEM of those 33 bytes, little-endian. Anything else
//!   (another key kind such as a seed or an account key, a bad checksum, lower case, padding)
//!   is rejected.
//! - The client proves it holds the key by signing the nonce the server sent in INFO: the
//!   ASCII bytes of the nonce string exactly as sent. The signature arrives base64 URL-safe
//!   without padding; standard base64 (with padding) is accepted too, as nats-server does.
//! - Verification is standard ed25519 (RFC 8032) through `ed25519-dalek`, which refuses
//!   non-canonical signatures.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

/// The prefix byte of a user public key (the base32 text starts with `U`).
pub const USER_PREFIX: u8 = 20 << 3;
/// Characters in an encoded public key.
pub const ENCODED_LENGTH: usize = 56;
/// Prefix byte, key, checksum.
const RAW_LENGTH: usize = 1 + KEY_LENGTH + 2;
const KEY_LENGTH: usize = 32;
const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Everything that can go wrong with a presented NKEY or its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NkeyError {
    #[error("an NKEY is {ENCODED_LENGTH} characters, got {length}")]
    WrongLength { length: usize },
    #[error("an NKEY is base32 (A-Z, 2-7), found {character:?}")]
    InvalidCharacter { character: char },
    #[error("NKEY checksum does not match")]
    ChecksumMismatch,
    #[error("not a user NKEY (prefix byte {prefix:#04x})")]
    NotAUserKey { prefix: u8 },
    #[error("NKEY does not hold a valid ed25519 public key")]
    InvalidPublicKey,
    #[error("signature is neither URL-safe nor standard base64")]
    SignatureNotBase64,
    #[error("an ed25519 signature is 64 bytes, got {length}")]
    SignatureWrongLength { length: usize },
    #[error("signature does not verify against the nonce")]
    SignatureMismatch,
}

/// A decoded, valid user public NKEY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPublicKey {
    encoded: String,
    key: VerifyingKey,
}

impl UserPublicKey {
    /// Decodes a user public key as a client presents it in CONNECT `nkey`.
    pub fn parse(encoded: &str) -> Result<Self, NkeyError> {
        let raw = decode_public_key(encoded)?;
        if raw[0] != USER_PREFIX {
            return Err(NkeyError::NotAUserKey { prefix: raw[0] });
        }
        let mut key_bytes = [0u8; KEY_LENGTH];
        key_bytes.copy_from_slice(&raw[1..=KEY_LENGTH]);
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| NkeyError::InvalidPublicKey)?;
        Ok(Self {
            encoded: encoded.to_string(),
            key,
        })
    }

    /// The key as written (`U...`).
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    /// Checks that `signature` (CONNECT `sig`) is this key's signature of `nonce`.
    pub fn verify_nonce(&self, nonce: &[u8], signature: &str) -> Result<(), NkeyError> {
        let bytes = decode_signature(signature)?;
        let signature =
            Signature::from_slice(&bytes).map_err(|_| NkeyError::SignatureWrongLength {
                length: bytes.len(),
            })?;
        self.key
            .verify(nonce, &signature)
            .map_err(|_| NkeyError::SignatureMismatch)
    }
}

/// Whether `encoded` is a valid user public NKEY (for validating configuration).
pub fn is_valid_user_public_key(encoded: &str) -> bool {
    UserPublicKey::parse(encoded).is_ok()
}

/// Base32-decodes a public key and checks its length and checksum; the prefix byte is left
/// for the caller to judge.
fn decode_public_key(encoded: &str) -> Result<[u8; RAW_LENGTH], NkeyError> {
    if encoded.len() != ENCODED_LENGTH {
        return Err(NkeyError::WrongLength {
            length: encoded.chars().count(),
        });
    }
    let mut raw = [0u8; RAW_LENGTH];
    let mut written = 0;
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for character in encoded.chars() {
        let value = base32_value(character).ok_or(NkeyError::InvalidCharacter { character })?;
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // 56 characters carry exactly 280 bits = 35 bytes, so `written` stays in range.
            if let Some(slot) = raw.get_mut(written) {
                *slot = (buffer >> bits) as u8;
            }
            written += 1;
        }
    }
    let (body, checksum) = raw.split_at(RAW_LENGTH - 2);
    if crc16(body) != u16::from_le_bytes([checksum[0], checksum[1]]) {
        return Err(NkeyError::ChecksumMismatch);
    }
    Ok(raw)
}

fn base32_value(character: char) -> Option<u8> {
    let byte = u8::try_from(character).ok()?;
    BASE32_ALPHABET
        .iter()
        .position(|&symbol| symbol == byte)
        .and_then(|index| u8::try_from(index).ok())
}

fn decode_signature(signature: &str) -> Result<Vec<u8>, NkeyError> {
    URL_SAFE_NO_PAD
        .decode(signature)
        .or_else(|_| STANDARD.decode(signature))
        .map_err(|_| NkeyError::SignatureNotBase64)
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum NKEYs carry.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in data {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Key material for tests: an encoder for public keys and seeds (the server only decodes).

    use ed25519_dalek::SigningKey;

    use super::{crc16, BASE32_ALPHABET, USER_PREFIX};

    pub fn base32(data: &[u8]) -> String {
        let mut out = String::new();
        let mut buffer: u32 = 0;
        let mut bits = 0;
        for byte in data {
            buffer = (buffer << 8) | u32::from(*byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(
                    BASE32_ALPHABET[((buffer >> bits) & 31) as usize],
                ));
            }
        }
        if bits > 0 {
            out.push(char::from(
                BASE32_ALPHABET[((buffer << (5 - bits)) & 31) as usize],
            ));
        }
        out
    }

    pub fn encode_public_key(prefix: u8, key: &[u8; 32]) -> String {
        let mut raw = vec![prefix];
        raw.extend_from_slice(key);
        let checksum = crc16(&raw);
        raw.extend_from_slice(&checksum.to_le_bytes());
        base32(&raw)
    }

    /// A deterministic user key pair: the signing key and its public NKEY.
    pub fn user_key(seed_byte: u8) -> (SigningKey, String) {
        let signing = SigningKey::from_bytes(&[seed_byte; 32]);
        let public = encode_public_key(USER_PREFIX, &signing.verifying_key().to_bytes());
        (signing, public)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::test_keys::{encode_public_key, user_key};
    use super::*;

    const NONCE: &str = "pR8nVLNkDq0qs2Y";

    fn url_safe_signature(key: &SigningKey, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(key.sign(nonce.as_bytes()).to_bytes())
    }

    #[test]
    fn a_user_key_signing_the_nonce_is_accepted() {
        let (signing, public) = user_key(7);
        assert!(public.starts_with('U'));
        assert_eq!(public.len(), ENCODED_LENGTH);
        let key = UserPublicKey::parse(&public).expect("a user key decodes");
        assert_eq!(key.as_str(), public);
        key.verify_nonce(NONCE.as_bytes(), &url_safe_signature(&signing, NONCE))
            .expect("the signature of the nonce verifies");
    }

    #[test]
    fn standard_base64_signatures_are_accepted_too() {
        let (signing, public) = user_key(8);
        let key = UserPublicKey::parse(&public).expect("a user key decodes");
        let signature = STANDARD.encode(signing.sign(NONCE.as_bytes()).to_bytes());
        assert!(signature.ends_with('='), "64 bytes pad in standard base64");
        key.verify_nonce(NONCE.as_bytes(), &signature)
            .expect("standard base64 is accepted");
    }

    #[test]
    fn a_signature_of_anything_else_is_rejected() {
        let (signing, public) = user_key(9);
        let (other_signing, _) = user_key(10);
        let key = UserPublicKey::parse(&public).expect("a user key decodes");
        let cases = [
            (
                url_safe_signature(&signing, "another-nonce"),
                NkeyError::SignatureMismatch,
            ),
            (
                url_safe_signature(&other_signing, NONCE),
                NkeyError::SignatureMismatch,
            ),
            ("not base64!".to_string(), NkeyError::SignatureNotBase64),
            (
                URL_SAFE_NO_PAD.encode([1u8; 10]),
                NkeyError::SignatureWrongLength { length: 10 },
            ),
            (String::new(), NkeyError::SignatureWrongLength { length: 0 }),
        ];
        for (signature, expected) in cases {
            assert_eq!(
                key.verify_nonce(NONCE.as_bytes(), &signature),
                Err(expected),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn keys_of_other_kinds_are_not_user_keys() {
        let (signing, _) = user_key(11);
        let public = signing.verifying_key().to_bytes();
        let account = encode_public_key(0, &public);
        assert!(account.starts_with('A'));
        assert_eq!(
            UserPublicKey::parse(&account),
            Err(NkeyError::NotAUserKey { prefix: 0 })
        );
        let server = encode_public_key(13 << 3, &public);
        assert!(!is_valid_user_public_key(&server));
        // A seed is never a public key, even for a user.
        assert!(!is_valid_user_public_key(
            "SCQE4RLSN3ZVA54BEBZJPZQ5PBVB57FKHFYIDASGRDWI6VL3YPC2GO27HI"
        ));
    }

    #[test]
    fn corrupted_keys_are_rejected() {
        let (_, public) = user_key(12);
        assert_eq!(
            UserPublicKey::parse(&public[..55]),
            Err(NkeyError::WrongLength { length: 55 })
        );
        assert_eq!(
            UserPublicKey::parse(&public.to_lowercase()),
            Err(NkeyError::InvalidCharacter {
                character: public.to_lowercase().chars().next().expect("not empty")
            })
        );
        let mut flipped = public.clone().into_bytes();
        flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(
            UserPublicKey::parse(&flipped),
            Err(NkeyError::ChecksumMismatch)
        );
        assert!(matches!(
            UserPublicKey::parse(&format!("{}1", &public[..55])),
            Err(NkeyError::InvalidCharacter { character: '1' })
        ));
        // Multi-byte characters cannot slip through the length check.
        assert!(UserPublicKey::parse(&format!("{}é", &public[..54])).is_err());
    }
}
