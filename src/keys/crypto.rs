//! age encryption as backups, restores and erasure use it: key ids, streaming encryption
//! to exactly one recipient, decryption, and the erasure canary.
//!
//! Everything here is standard age (X25519 recipients, <https://c2sp.org/age>): a file
//! written by [`EncryptingWriter`] is opened by the stock `age -d -i key.txt`, and the
//! stock `age -r` writes files that [`decrypting_reader`] opens.

use std::fmt;
use std::io::{self, Read, Write};
use std::iter;

use age::x25519::{Identity, Recipient};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// How many hex digits of the SHA-256 a [`KeyId`] keeps (64 bits).
const KEY_ID_HEX_DIGITS: usize = 16;

/// The identifier of a tenant key: `sha256:` followed by the first 16 hex digits of the
/// SHA-256 of the recipient's canonical string (`age1...`, lower-case Bech32, as `age-keygen
/// -y` prints it). Public, stable, and computable by anyone who has the recipient:
///
/// ```sh
/// printf %s age1... | sha256sum | cut -c1-16
/// ```
///
/// It names a key in `status.keyId`, backup manifests and receipts; 64 bits tell keys
/// apart, they do not authenticate one (the recipient itself does).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The key id of `recipient`.
    pub fn of(recipient: &Recipient) -> KeyId {
        let digest = Sha256::digest(recipient.to_string().as_bytes());
        let mut id = String::with_capacity(7 + KEY_ID_HEX_DIGITS);
        id.push_str("sha256:");
        for byte in digest.iter().take(KEY_ID_HEX_DIGITS / 2) {
            id.push(hex_digit(byte >> 4));
            id.push(hex_digit(byte & 0xf));
        }
        KeyId(id)
    }

    /// The key id as a string, e.g. `sha256:3f2a9c01d4e5b6a7`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0xf)])
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A failure to encrypt or decrypt. Messages come from the age library and the I/O
/// layer; neither contains key material.
#[derive(Debug, Error)]
pub enum CryptoError {
    /// Writing the ciphertext or reading the input failed.
    #[error("I/O error during age encryption: {0}")]
    Io(#[from] io::Error),
    /// The age library refused to encrypt.
    #[error("age encryption failed: {0}")]
    Encrypt(#[from] age::EncryptError),
    /// The file is not an age file, or none of the identities opens it, or it was
    /// tampered with.
    #[error("age decryption failed: {0}")]
    Decrypt(#[from] age::DecryptError),
}

/// A [`Write`] adapter that age-encrypts everything written to it to exactly one X25519
/// recipient and writes the age file to the inner writer, in 64 KiB chunks: memory stays
/// bounded whatever the size of the stream.
///
/// The header is written when the adapter is created. [`EncryptingWriter::finish`] must
/// be called at the end: it writes the last chunk, without which the file does not
/// decrypt (dropping the adapter leaves a truncated, unreadable file, which is what a
/// failed backup should leave).
pub struct EncryptingWriter<W: Write> {
    stream: age::stream::StreamWriter<W>,
}

impl<W: Write> EncryptingWriter<W> {
    /// Starts an age file encrypted to `recipient` (and nobody else) on `output`.
    pub fn new(recipient: &Recipient, output: W) -> Result<Self, CryptoError> {
        let encryptor = age::Encryptor::with_recipients(iter::once(recipient as _))?;
        Ok(EncryptingWriter {
            stream: encryptor.wrap_output(output)?,
        })
    }

    /// Writes the last chunk and returns the inner writer (not flushed).
    pub fn finish(self) -> io::Result<W> {
        self.stream.finish()
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// A reader of the plaintext of the age file `input`, if `identity` opens it. The
/// payload is authenticated chunk by chunk: reading fails on the first tampered chunk and
/// on a truncated file.
pub fn decrypting_reader<R: Read>(
    input: R,
    identity: &Identity,
) -> Result<impl Read + use<R>, CryptoError> {
    let decryptor = age::Decryptor::new(input)?;
    Ok(decryptor.decrypt(iter::once(identity as _))?)
}

/// Encrypts `plaintext` to `recipient` in memory (for small values such as the canary).
pub fn encrypt_to(recipient: &Recipient, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut writer = EncryptingWriter::new(recipient, Vec::new())?;
    writer.write_all(plaintext)?;
    Ok(writer.finish()?)
}

/// The plaintext of the erasure canary: a small, known value encrypted to a tenant's
/// recipient when its key is created, kept beside its backups, and tried again after the
/// key is destroyed.
pub const CANARY_PLAINTEXT: &[u8] = b"landlord erasure canary v1\n";

/// The erasure canary for `recipient`: [`CANARY_PLAINTEXT`] as an age file.
pub fn seal_canary(recipient: &Recipient) -> Result<Vec<u8>, CryptoError> {
    encrypt_to(recipient, CANARY_PLAINTEXT)
}

/// Whether any of `identities` opens the canary `ciphertext` to [`CANARY_PLAINTEXT`].
///
/// `Ok(false)` means: a well-formed age file that none of the identities opens (or that
/// opens to something else). A ciphertext that is not an age file, or fails its
/// integrity checks, is an error: erasure must not count it as proof.
pub fn canary_opens<'a>(
    ciphertext: &[u8],
    identities: impl IntoIterator<Item = &'a Identity>,
) -> Result<bool, CryptoError> {
    for identity in identities {
        let decryptor = age::Decryptor::new(ciphertext)?;
        match decryptor.decrypt(iter::once(identity as _)) {
            Ok(mut reader) => {
                let mut plaintext = Vec::with_capacity(CANARY_PLAINTEXT.len());
                reader
                    .by_ref()
                    .take(CANARY_PLAINTEXT.len() as u64 + 1)
                    .read_to_end(&mut plaintext)?;
                if plaintext == CANARY_PLAINTEXT {
                    return Ok(true);
                }
            }
            Err(age::DecryptError::NoMatchingKeys) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::header::parse_header;

    fn read_all(mut reader: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("decrypts");
        out
    }

    #[test]
    fn key_id_is_the_documented_fingerprint() {
        // A fixed recipient: the key id is part of the on-disk format and must not drift.
        let recipient: Recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
            .parse()
            .expect("valid recipient");
        // printf %s age1ql3z...mcac8p | sha256sum | cut -c1-16
        assert_eq!(KeyId::of(&recipient).as_str(), "sha256:cf7e568231315068");
        let other = Identity::generate().to_public();
        assert_ne!(KeyId::of(&other), KeyId::of(&recipient));
        assert_eq!(
            KeyId::of(&other),
            KeyId::of(&other.to_string().parse().expect("r"))
        );
    }

    #[test]
    fn streaming_round_trip_with_exactly_one_stanza() {
        let identity = Identity::generate();
        let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = EncryptingWriter::new(&identity.to_public(), Vec::new()).expect("w");
        for chunk in plaintext.chunks(7_001) {
            writer.write_all(chunk).expect("write");
        }
        let file = writer.finish().expect("finish");
        let header = parse_header(&file).expect("age header");
        assert!(header.single_x25519().is_some(), "{header:?}");
        assert_eq!(
            read_all(decrypting_reader(file.as_slice(), &identity).expect("opens")),
            plaintext
        );
        // Another identity does not open it.
        let err = decrypting_reader(file.as_slice(), &Identity::generate())
            .err()
            .expect("does not open");
        assert!(matches!(
            err,
            CryptoError::Decrypt(age::DecryptError::NoMatchingKeys)
        ));
    }

    #[test]
    fn an_unfinished_stream_does_not_decrypt() {
        let identity = Identity::generate();
        let mut output = Vec::new();
        {
            let mut writer = EncryptingWriter::new(&identity.to_public(), &mut output).expect("w");
            writer.write_all(&[42u8; 100_000]).expect("write");
            // Dropped without finish, as a failed backup would be.
        }
        let mut reader = decrypting_reader(output.as_slice(), &identity).expect("header ok");
        let mut out = Vec::new();
        assert!(
            reader.read_to_end(&mut out).is_err(),
            "a truncated file must fail"
        );
    }

    #[test]
    fn the_canary_opens_only_with_its_identity() {
        let identity = Identity::generate();
        let other = Identity::generate();
        let canary = seal_canary(&identity.to_public()).expect("sealed");
        assert!(
            parse_header(&canary)
                .expect("age")
                .single_x25519()
                .is_some()
        );
        assert!(canary_opens(&canary, [&identity]).expect("checked"));
        assert!(canary_opens(&canary, [&other, &identity]).expect("checked"));
        assert!(!canary_opens(&canary, [&other]).expect("checked"));
        assert!(!canary_opens(&canary, []).expect("checked"));
        // A file of the right key with another plaintext is not the canary.
        let impostor = encrypt_to(&identity.to_public(), b"something else").expect("enc");
        assert!(!canary_opens(&impostor, [&identity]).expect("checked"));
        // Garbage is not evidence either way.
        assert!(canary_opens(b"not an age file", [&identity]).is_err());
        let mut tampered = canary.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(canary_opens(&tampered, [&identity]).is_err());
    }
}
