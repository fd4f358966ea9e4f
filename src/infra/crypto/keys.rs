//! The master key: 32 bytes that seal every stored secret (bucket credentials, TOTP seeds).
//! Taken from `MEDPORT_MASTER_KEY`, `MEDPORT_MASTER_KEY_FILE`, or created in the data
//! directory on first start with mode 0600.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};

use crate::config::MasterKeySource;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("MEDPORT_MASTER_KEY: expected 64 hexadecimal characters")]
    Inline,
    #[error("the system random number generator failed")]
    Random,
}

/// A short, non-secret name for a key, stored beside every ciphertext so that rotation
/// knows which key opens which row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId(String);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub struct MasterKey {
    id: KeyId,
    bytes: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"medport master key id\0")
            .chain_update(bytes)
            .finalize();
        Self {
            id: KeyId(hex::encode(&digest[..8])),
            bytes: SecretBox::new(Box::new(bytes)),
        }
    }

    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Random)?;
        Ok(Self::from_bytes(bytes))
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub fn expose(&self) -> &[u8; 32] {
        self.bytes.expose_secret()
    }

    /// Loads an existing key and never creates one (`medport check` only looks).
    pub fn load_existing(source: &MasterKeySource) -> Result<Self, KeyError> {
        match source {
            MasterKeySource::Inline(hex_key) => {
                parse_hex(hex_key.expose_secret()).ok_or(KeyError::Inline)
            }
            MasterKeySource::File(path) | MasterKeySource::DataDir(path) => read_key_file(path),
        }
    }

    pub fn load_or_create(source: &MasterKeySource) -> Result<Self, KeyError> {
        match source {
            MasterKeySource::Inline(hex_key) => {
                parse_hex(hex_key.expose_secret()).ok_or(KeyError::Inline)
            }
            MasterKeySource::File(path) => read_key_file(path),
            MasterKeySource::DataDir(path) => {
                if path.exists() {
                    read_key_file(path)
                } else {
                    create_key_file(path)
                }
            }
        }
    }
}

fn parse_hex(text: &str) -> Option<MasterKey> {
    let decoded = hex::decode(text.trim()).ok()?;
    let bytes: [u8; 32] = decoded.try_into().ok()?;
    Some(MasterKey::from_bytes(bytes))
}

fn file_error(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::File {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn read_key_file(path: &Path) -> Result<MasterKey, KeyError> {
    let meta = fs::metadata(path).map_err(|e| file_error(path, format!("cannot be read ({e})")))?;
    // Like ssh with private keys: a key others can read is refused rather than used.
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(file_error(
            path,
            format!("is readable by other users (mode {mode:o}); run chmod 600 on it"),
        ));
    }
    let text =
        fs::read_to_string(path).map_err(|e| file_error(path, format!("cannot be read ({e})")))?;
    parse_hex(&text).ok_or_else(|| file_error(path, "expected 64 hexadecimal characters"))
}

fn create_key_file(path: &Path) -> Result<MasterKey, KeyError> {
    if let Some(dir) = path.parent() {
        crate::infra::data_dir::create_private_dirs(dir)
            .map_err(|e| file_error(path, format!("cannot create folder ({e})")))?;
    }
    let key = MasterKey::generate()?;
    let tmp = path.with_extension("key.tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| file_error(path, format!("cannot be created ({e})")))?;
    let written = file
        .write_all(format!("{}\n", hex::encode(key.expose())).as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(file_error(path, format!("cannot be written ({e})")));
    }
    tracing::info!(path = %path.display(), key_id = key.id().as_str(), "created a new master key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_file_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let source = MasterKeySource::DataDir(path.clone());
        let first = MasterKey::load_or_create(&source).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let folder = fs::metadata(dir.path().join("sub")).unwrap();
        assert_eq!(folder.permissions().mode() & 0o777, 0o700);
        let again = MasterKey::load_or_create(&source).unwrap();
        assert_eq!(first.expose(), again.expose());
        assert_eq!(first.id(), again.id());
    }

    #[test]
    fn world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "ab".repeat(32)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&MasterKeySource::File(path)).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = MasterKey::from_bytes([0xab; 32]);
        assert!(!format!("{key:?}").contains("ab, ab") && !format!("{key:?}").contains("abab"));
    }
}
