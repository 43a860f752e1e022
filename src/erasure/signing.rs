//! The receipt's Ed25519 signature (RFC 8032).
//!
//! What is signed: the RFC 8785 canonical JSON ([`super::jcs`]) of the receipt's spec as
//! JSON, without its `signature` member: every other field of the spec. Metadata and
//! status are not signed. Anyone can check one with an Ed25519 library and a JCS
//! implementation:
//!
//! ```text
//! message   = JCS(spec without "signature")
//! public    = base64decode(spec.signature.publicKey)      (32 bytes)
//! signature = base64decode(spec.signature.value)          (64 bytes)
//! Ed25519.verify(public, message, signature)
//! ```
//!
//! Ed25519 is deterministic: the same spec signed twice with the same key gives the same
//! bytes, so a receipt written again after a crash is identical to the first.
//!
//! A key's id ([`key_id`]) is `ed25519-` and the first 16 hex digits of the SHA-256 of
//! the 32 raw public key bytes:
//!
//! ```sh
//! printf %s "$PUBLIC_KEY_BASE64" | base64 -d | sha256sum | cut -c1-16
//! ```
//!
//! It names a key in the public-keys ConfigMap and in messages (a ConfigMap key may not
//! hold `:`, hence the `-`); it tells keys apart, the public key itself authenticates.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::jcs;
use super::receipt::Problem;
use crate::api::{ErasureReceiptSpec, Signature, SignatureAlgorithm};

/// The operator's receipt signing key. Its `Debug` shows the key id and public key only;
/// the secret is zeroed when it is dropped (ed25519-dalek's `zeroize`).
pub struct ReceiptSigner {
    key: SigningKey,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner")
            .field("key_id", &self.key_id())
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// Why a spec could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the receipt spec has no JSON form")]
    Json(#[source] serde_json::Error),
    #[error("the receipt spec has no RFC 8785 canonical form")]
    Canonical(#[source] jcs::Error),
}

impl ReceiptSigner {
    /// The signer of the Ed25519 key whose 32-byte seed (RFC 8032's private key) is
    /// `seed`. The caller zeroes its own copy of the seed.
    pub fn from_seed(seed: &[u8; 32]) -> ReceiptSigner {
        ReceiptSigner {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<ReceiptSigner, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        let signer = ReceiptSigner::from_seed(&seed);
        seed.zeroize();
        Ok(signer)
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key, base64 (standard alphabet, padded) of its 32 bytes.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.verifying_key().as_bytes())
    }

    /// The key's id: `ed25519-` + the first 16 hex digits of SHA-256(public key bytes).
    pub fn key_id(&self) -> String {
        key_id(&self.verifying_key())
    }

    /// Signs `spec`: sets `spec.signature` (Ed25519, this public key, the signature over
    /// the JCS of every other field of the spec). Whatever `spec.signature` held before is
    /// not signed and is replaced.
    pub fn sign(&self, spec: &mut ErasureReceiptSpec) -> Result<(), SignError> {
        let message = signed_bytes(spec)?;
        let signature = self.key.sign(&message);
        spec.signature = Signature {
            algorithm: SignatureAlgorithm::Ed25519,
            public_key: self.public_key(),
            value: STANDARD.encode(signature.to_bytes()),
        };
        Ok(())
    }
}

/// The id of `key`, as [`ReceiptSigner::key_id`] describes.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut id = String::from("ed25519-");
    for byte in &digest[..8] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// A public key from the base64 of its 32 bytes.
pub fn parse_public_key(base64: &str) -> Result<VerifyingKey, String> {
    let bytes = STANDARD
        .decode(base64.trim())
        .map_err(|e| format!("not base64: {e}"))?;
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("{} bytes, an Ed25519 public key has 32", bytes.len()))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "not a point of Ed25519's curve".to_owned())?;
    if key.is_weak() {
        return Err("a weak (small-order) key, which no signer holds".to_owned());
    }
    Ok(key)
}

/// The bytes [`ReceiptSigner::sign`] signs for `spec`: the JCS of its JSON without the
/// `signature` member.
pub fn signed_bytes(spec: &ErasureReceiptSpec) -> Result<Vec<u8>, SignError> {
    let value = serde_json::to_value(spec).map_err(SignError::Json)?;
    signed_bytes_of_value(&value).map_err(SignError::Canonical)
}

/// The bytes a signature covers for a spec given as JSON (as a third party reads it from
/// the document): its JCS without the `signature` member.
pub fn signed_bytes_of_value(spec: &serde_json::Value) -> Result<Vec<u8>, jcs::Error> {
    let mut value = spec.clone();
    if let Some(members) = value.as_object_mut() {
        members.remove("signature");
    }
    jcs::canonicalize(&value)
}

/// Checks `spec.signature` over the rest of `spec`, with the key `pinned` when given (the
/// receipt must then name that key), else with the public key the receipt names; that
/// proves only that the receipt is unchanged since someone holding that key signed it.
pub fn verify_signature(
    spec: &ErasureReceiptSpec,
    pinned: Option<&VerifyingKey>,
) -> Result<(), Problem> {
    let message = match signed_bytes(spec) {
        Ok(message) => message,
        Err(e) => {
            return Err(Problem::NotCanonical {
                detail: crate::controller::describe(&e),
            });
        }
    };
    verify_signed_bytes(&spec.signature, &message, pinned)
}

/// Checks `signature` over `message` (the signed bytes of a spec).
pub fn verify_signed_bytes(
    signature: &Signature,
    message: &[u8],
    pinned: Option<&VerifyingKey>,
) -> Result<(), Problem> {
    let SignatureAlgorithm::Ed25519 = signature.algorithm;
    let named = parse_public_key(&signature.public_key)
        .map_err(|detail| Problem::BadPublicKey { detail })?;
    let key = match pinned {
        Some(pinned) if pinned != &named => {
            return Err(Problem::NotPinnedKey {
                pinned: key_id(pinned),
                found: key_id(&named),
            });
        }
        Some(pinned) => *pinned,
        None => named,
    };
    let bytes =
        STANDARD
            .decode(signature.value.trim())
            .map_err(|e| Problem::BadSignatureEncoding {
                detail: format!("not base64: {e}"),
            })?;
    let signature = ed25519_dalek::Signature::from_slice(&bytes).map_err(|_| {
        Problem::BadSignatureEncoding {
            detail: format!("{} bytes, an Ed25519 signature has 64", bytes.len()),
        }
    })?;
    // Strict: no small-order keys, no non-canonical signatures (RFC 8032 5.1.7).
    key.verify_strict(message, &signature)
        .map_err(|_| Problem::SignatureInvalid {
            key_id: key_id(&key),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::receipt::tests::{at, good};

    fn signer(byte: u8) -> ReceiptSigner {
        ReceiptSigner::from_seed(&[byte; 32])
    }

    fn signed() -> ErasureReceiptSpec {
        let mut spec = good();
        signer(7).sign(&mut spec).expect("signed");
        spec
    }

    /// RFC 8032 section 7.1, TEST 1: the key and signature of the empty message, so the
    /// Ed25519 here is the standard one.
    #[test]
    fn rfc_8032_test_vector() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let seed: [u8; 32] =
            hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .try_into()
                .expect("32 bytes");
        let signer = ReceiptSigner::from_seed(&seed);
        assert_eq!(
            signer.verifying_key().as_bytes().as_slice(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        assert_eq!(
            signer.key.sign(b"").to_bytes().as_slice(),
            hex(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
    }

    #[test]
    fn a_signed_receipt_verifies_and_names_the_key() {
        let spec = signed();
        assert_eq!(spec.signature.algorithm, SignatureAlgorithm::Ed25519);
        assert_eq!(spec.signature.public_key, signer(7).public_key());
        assert_eq!(
            STANDARD.decode(&spec.signature.value).expect("b64").len(),
            64
        );
        verify_signature(&spec, None).expect("verifies");
        verify_signature(&spec, Some(&signer(7).verifying_key())).expect("verifies pinned");
    }

    #[test]
    fn signing_is_deterministic() {
        let (a, b) = (signed(), signed());
        assert_eq!(a.signature, b.signature);
        // Whatever the signature member held before does not matter.
        let mut c = good();
        c.signature.value = "junk".to_owned();
        c.signature.public_key = "junk".to_owned();
        signer(7).sign(&mut c).expect("signed");
        assert_eq!(a, c);
        // Another key gives another signature.
        let mut d = good();
        signer(8).sign(&mut d).expect("signed");
        assert_ne!(a.signature.value, d.signature.value);
    }

    #[test]
    fn the_signature_covers_every_other_field() {
        type Change = Box<dyn Fn(&mut ErasureReceiptSpec)>;
        let changes: Vec<(&str, Change)> = vec![
            ("tenant.uid", Box::new(|s| s.tenant.uid.push('0'))),
            (
                "namespaces",
                Box::new(|s| s.namespaces.pop().map(drop).unwrap_or(())),
            ),
            ("database", Box::new(|s| s.database = None)),
            (
                "storage",
                Box::new(|s| s.storage.as_mut().expect("storage").location.push('x')),
            ),
            ("keyId", Box::new(|s| s.key_id.push('0'))),
            (
                "keyProvider",
                Box::new(|s| s.key_provider = "aws-kms".to_owned()),
            ),
            ("steps", Box::new(|s| s.steps[0].completed_at = at(6))),
            ("steps.outcome", Box::new(|s| s.steps[0].outcome.push('.'))),
            (
                "evidence",
                Box::new(|s| s.evidence[0].observation.push('.')),
            ),
            ("objects", Box::new(|s| s.objects[0].size_bytes += 1)),
            (
                "objects.header",
                Box::new(|s| s.objects[1].header.as_mut().expect("h").bytes_read += 1),
            ),
            (
                "operatorVersion",
                Box::new(|s| s.operator_version = "0.1.1".to_owned()),
            ),
            ("issuedAt", Box::new(|s| s.issued_at = at(61))),
            (
                "storedCopy",
                Box::new(|s| s.stored_copy.as_mut().expect("copy").locked = false),
            ),
        ];
        for (field, change) in changes {
            let mut spec = signed();
            change(&mut spec);
            assert_eq!(
                verify_signature(&spec, None),
                Err(Problem::SignatureInvalid {
                    key_id: signer(7).key_id()
                }),
                "{field}"
            );
        }
    }

    #[test]
    fn a_pinned_key_must_be_the_signer() {
        let spec = signed();
        let other = signer(8);
        assert_eq!(
            verify_signature(&spec, Some(&other.verifying_key())),
            Err(Problem::NotPinnedKey {
                pinned: other.key_id(),
                found: signer(7).key_id()
            })
        );
        // A forger who signs with their own key and names it is caught only by pinning.
        let mut forged = signed();
        forged.tenant.name = "globex".to_owned();
        other.sign(&mut forged).expect("signed");
        verify_signature(&forged, None).expect("self-consistent");
        assert!(verify_signature(&forged, Some(&signer(7).verifying_key())).is_err());
    }

    #[test]
    fn malformed_keys_and_signatures_are_problems() {
        let mut spec = signed();
        spec.signature.public_key = "not base64!".to_owned();
        assert!(matches!(
            verify_signature(&spec, None),
            Err(Problem::BadPublicKey { .. })
        ));
        let mut spec = signed();
        spec.signature.public_key = STANDARD.encode([1u8; 31]);
        assert!(matches!(
            verify_signature(&spec, None),
            Err(Problem::BadPublicKey { .. })
        ));
        // The identity point: a weak key.
        let mut spec = signed();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        spec.signature.public_key = STANDARD.encode(identity);
        assert!(matches!(
            verify_signature(&spec, None),
            Err(Problem::BadPublicKey { .. })
        ));
        let mut spec = signed();
        spec.signature.value = STANDARD.encode([0u8; 63]);
        assert!(matches!(
            verify_signature(&spec, None),
            Err(Problem::BadSignatureEncoding { .. })
        ));
        let mut spec = signed();
        spec.signature.value = STANDARD.encode([0u8; 64]);
        assert!(matches!(
            verify_signature(&spec, None),
            Err(Problem::SignatureInvalid { .. })
        ));
    }

    #[test]
    fn an_out_of_range_number_cannot_be_signed() {
        let mut spec = good();
        spec.objects[0].size_bytes = 1 << 53;
        assert!(matches!(
            signer(7).sign(&mut spec),
            Err(SignError::Canonical(_))
        ));
        spec.objects[0].size_bytes = (1 << 53) - 1;
        signer(7)
            .sign(&mut spec)
            .expect("the largest safe integer signs");
    }

    #[test]
    fn key_ids_and_debug_show_no_secret() {
        let s = signer(7);
        let id = s.key_id();
        assert!(id.starts_with("ed25519-") && id.len() == 8 + 16, "{id}");
        assert_eq!(id, key_id(&parse_public_key(&s.public_key()).expect("key")));
        let debug = format!("{s:?}");
        assert!(debug.contains(&id), "{debug}");
        let seed_b64 = STANDARD.encode([7u8; 32]);
        assert!(!debug.contains(&seed_b64), "{debug}");
        assert!(!debug.contains("[7, 7"), "{debug}");
        assert!(!debug.contains("0707"), "{debug}");
        // The expected id, computed independently.
        let digest = Sha256::digest(s.verifying_key().as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_eq!(id, format!("ed25519-{hex}"));
    }

    #[test]
    fn generated_keys_differ() {
        let a = ReceiptSigner::generate().expect("random");
        let b = ReceiptSigner::generate().expect("random");
        assert_ne!(a.public_key(), b.public_key());
    }
}
