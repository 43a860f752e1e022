//! Role passwords: generation from the operating system's CSPRNG, and a type that keeps
//! them out of logs.

use std::fmt;

use thiserror::Error;

/// Length of generated passwords: 40 characters from a 62-symbol alphabet, about 238 bits.
pub const GENERATED_PASSWORD_LEN: usize = 40;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Largest multiple of 62 that fits in a byte: bytes at or above it are rejected, so
/// every symbol is equally likely.
const REJECT_FROM: u8 = 248;

/// A password. Its `Debug` and `Display` print `[redacted]`; [`Password::expose`] is the
/// only way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// The operating system's random number generator failed.
#[derive(Debug, Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(getrandom::Error);

impl Password {
    /// Wraps an existing password (read from a Secret, for instance).
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// A new random password of [`GENERATED_PASSWORD_LEN`] letters and digits, drawn
    /// from the operating system's CSPRNG. Letters and digits only, so the password needs
    /// no escaping in connection URIs or `.pgpass` files.
    pub fn generate() -> Result<Self, RandomError> {
        let mut out = String::with_capacity(GENERATED_PASSWORD_LEN);
        let mut buf = [0u8; 64];
        while out.len() < GENERATED_PASSWORD_LEN {
            getrandom::fill(&mut buf).map_err(RandomError)?;
            for byte in buf {
                if byte < REJECT_FROM && out.len() < GENERATED_PASSWORD_LEN {
                    out.push(char::from(ALPHABET[usize::from(byte % 62)]));
                }
            }
        }
        Ok(Password(out))
    }

    /// The password itself, for the few places that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let password = Password::generate().unwrap();
            assert_eq!(password.expose().len(), GENERATED_PASSWORD_LEN);
            assert!(password.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(seen.insert(password.expose().to_owned()));
        }
        // Every symbol shows up across 8000 draws (each is missed with p < 1e-50).
        let all: String = seen.into_iter().collect();
        for symbol in ALPHABET {
            assert!(
                all.as_bytes().contains(symbol),
                "{} never drawn",
                *symbol as char
            );
        }
    }

    #[test]
    fn debug_and_display_redact() {
        let password = Password::new("hunter2-secret");
        assert_eq!(format!("{password:?}"), "Password([redacted])");
        assert_eq!(format!("{password}"), "[redacted]");
        assert_eq!(password.expose(), "hunter2-secret");
    }
}
