//! The anchor key and the signed statement.
//!
//! The statement an anchor signs is plain text, so that an auditor can check it with any
//! Ed25519 tool (`openssl pkeyutl -verify -rawin`), not only with this program:
//!
//! ```text
//! ledger-anchor/v1
//! position 1042
//! hash 3f5a…(64 hex digits, the event's chain hash)
//! signed_at 2026-08-01T02:00:00.000000Z
//! key 8a1c…(64 hex digits, the signing public key)
//! new_key 77e0…(64 hex digits; empty unless the anchor rotates the key)
//! ```
//!
//! Every line ends with `\n`. Keys and signatures are lowercase hex.

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use ledger_core::envelope::format_time;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("an anchor key is 64 hex digits (a 32-byte Ed25519 seed): {0}")]
    BadSecret(String),
    #[error("a public key is 64 hex digits (32 bytes of an Ed25519 public key): {0}")]
    BadPublic(String),
    #[error("a signature is 128 hex digits (64 bytes)")]
    BadSignature,
    #[error("the signature does not verify with key {0}")]
    DoesNotVerify(String),
}

/// The fields a signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement<'a> {
    pub head_position: u64,
    pub head_hash: &'a str,
    pub signed_at: DateTime<Utc>,
    pub public_key: &'a str,
    pub new_public_key: Option<&'a str>,
}

impl Statement<'_> {
    pub fn bytes(&self) -> Vec<u8> {
        format!(
            "ledger-anchor/v1\nposition {}\nhash {}\nsigned_at {}\nkey {}\nnew_key {}\n",
            self.head_position,
            self.head_hash,
            format_time(self.signed_at),
            self.public_key,
            self.new_public_key.unwrap_or("")
        )
        .into_bytes()
    }
}

/// The private anchor key (shared, not copied, between the commands that carry it). Its
/// `Debug` shows the public half only.
#[derive(Clone)]
pub struct AnchorKey(std::sync::Arc<SigningKey>);

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnchorKey(public {})", self.public_hex())
    }
}

impl AnchorKey {
    /// From 32 bytes of secret seed (the caller draws them from the OS).
    pub fn from_seed(seed: [u8; 32]) -> AnchorKey {
        AnchorKey(std::sync::Arc::new(SigningKey::from_bytes(&seed)))
    }

    /// From the key file's text or `LEDGER_ANCHOR_KEY`: the seed as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<AnchorKey, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|e| KeyError::BadSecret(e.to_string()))?;
        let seed = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| KeyError::BadSecret(format!("found {} bytes", bytes.len())))?;
        Ok(AnchorKey::from_seed(seed))
    }

    /// The seed as 64 hex digits: what a key file holds.
    pub fn secret_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn public_hex(&self) -> String {
        self.public().to_string()
    }

    /// The signature of `statement`, as 128 hex digits.
    pub fn sign(&self, statement: &Statement<'_>) -> String {
        hex::encode(self.0.sign(&statement.bytes()).to_bytes())
    }
}

/// An anchor public key, written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        let bytes = hex::decode(s.trim()).map_err(|e| KeyError::BadPublic(e.to_string()))?;
        let bytes = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| KeyError::BadPublic(format!("found {} bytes", bytes.len())))?;
        VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|e| KeyError::BadPublic(e.to_string()))
    }
}

impl PublicKey {
    /// Checks `signature` (hex) over `statement` (strict: no malleable or weak-key forms).
    pub fn verify(&self, statement: &Statement<'_>, signature: &str) -> Result<(), KeyError> {
        let bytes = hex::decode(signature).map_err(|_| KeyError::BadSignature)?;
        let sig = Signature::from_slice(&bytes).map_err(|_| KeyError::BadSignature)?;
        self.0.verify_strict(&statement.bytes(), &sig).map_err(|_| KeyError::DoesNotVerify(self.to_string()))
    }
}

/// Checks `signature` over `statement` with the key the statement names (`key` or, for the
/// rotation's second signature, `new_key`).
pub fn check(public_key: &str, statement: &Statement<'_>, signature: &str) -> Result<(), KeyError> {
    public_key.parse::<PublicKey>()?.verify(statement, signature)
}
