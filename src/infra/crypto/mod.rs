//! The master key and sealing of secrets at rest (AES-256-GCM).

pub mod blind;
pub mod keys;
pub mod secrets;

use data_encoding::BASE64URL_NOPAD;
use ring::rand::{SecureRandom, SystemRandom};

/// The system's random generator failed (it does not, short of a broken system).
#[derive(Debug, thiserror::Error)]
#[error("system random number generator failed")]
pub struct RandomError;

/// `N` bytes from the system's random generator.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(bytes)
}

/// 256 random bits, base64url: session ids, CSRF tokens, lease tokens.
pub fn random_token() -> Result<String, RandomError> {
    Ok(BASE64URL_NOPAD.encode(&random_bytes::<32>()?))
}
