//! Standard Webhooks signing secrets (`whsec_` + base64 key): parsing, generation, and
//! the first-start secret of the default endpoint.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// A decoded signing key. Its `Debug` never shows the key, so it cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a secret string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("is not valid base64 after the `whsec_` prefix")]
    NotBase64,
    #[error(
        "is not a signing secret: write it as `whsec_` and the base64 of the key, as the \
         sender shows it"
    )]
    NotASecret,
    #[error("is a placeholder: put the endpoint's real secret here (`whsec_` and base64)")]
    Placeholder,
    #[error(
        "decodes to {0} bytes; a signing key needs at least 16 (write it as `whsec_` and the \
         base64 of the key, as the sender shows it)"
    )]
    TooShort(usize),
}

impl Secret {
    /// Parses `whsec_<base64>`; like the reference libraries, the prefix is optional.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let text = text.trim();
        if text.contains("...") || text.contains('…') {
            return Err(SecretError::Placeholder);
        }
        // Without the prefix (the reference libraries accept that too), a value that is not
        // base64 is no secret at all, and the prefix is not what to blame.
        let key = match text.strip_prefix("whsec_") {
            Some(b64) => STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?,
            None => STANDARD.decode(text).map_err(|_| SecretError::NotASecret)?,
        };
        if key.len() < 16 {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(Secret(key))
    }

    /// A fresh secret of 32 random bytes.
    pub fn generate() -> Secret {
        let key: [u8; 32] = rand::random();
        Secret(key.to_vec())
    }

    /// The raw HMAC key.
    pub fn key(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_...` form a sender is configured with.
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }
}

/// Loads the secret stored at `path`, or creates one there (mode 0600, fsynced).
/// Returns the secret and whether it was created now.
pub fn load_or_create(path: &Path) -> std::io::Result<(Secret, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = Secret::parse(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: stored secret {e}", path.display()),
                )
            })?;
            Ok((secret, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let secret = Secret::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path)?;
            file.write_all(secret.to_whsec().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            Ok((secret, true))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_prefix() {
        let a = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key().len(), 24);
    }

    #[test]
    fn refuses_garbage_and_short_keys() {
        assert_eq!(Secret::parse("whsec_!!!"), Err(SecretError::NotBase64));
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::TooShort(3)));
        // Without the prefix, not base64: no mention of a prefix that is not there.
        assert_eq!(Secret::parse("hunter2"), Err(SecretError::NotASecret));
        // The README's example value, copied as it is.
        assert_eq!(Secret::parse("whsec_..."), Err(SecretError::Placeholder));
        // The message says what form a secret takes.
        assert!(SecretError::TooShort(3).to_string().contains("`whsec_`"));
    }

    #[test]
    fn generated_secret_round_trips_and_debug_hides_it() {
        let s = Secret::generate();
        assert_eq!(Secret::parse(&s.to_whsec()).unwrap(), s);
        assert!(!format!("{s:?}").contains(&s.to_whsec()[6..]));
    }

    #[test]
    fn stored_secret_is_created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets/default.secret");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
