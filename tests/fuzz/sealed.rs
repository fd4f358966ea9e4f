//! The sealed-secret format (`MPS1 | key id | nonce | ciphertext | tag`): opening any
//! bytes, mutated seals, seals moved to another row or field, and seals under other keys.
//! Anything but an untouched seal opened in its own place under a known key is an error.

use std::sync::Arc;

use medport::infra::crypto::keys::MasterKey;
use medport::infra::crypto::secrets::{
    Keyring, SealContext, SealError, needs_reseal, open, reseal, seal, sealed_key_id,
};
use proptest::prelude::*;
use secrecy::ExposeSecret;

use crate::support::{apply, byte_edits, config, ensure, replay};

const HEADER: usize = 4 + 8 + 12;
const TAG: usize = 16;

fn key(byte: u8) -> Arc<MasterKey> {
    Arc::new(MasterKey::from_bytes([byte; 32]))
}

fn key_id(k: &MasterKey) -> Vec<u8> {
    hex::decode(k.id().as_str()).unwrap()
}

/// The corpus and the mutations use this keyring: current key 0x42, previous key 0x17.
fn keyring() -> Keyring {
    Keyring::new(key(0x42)).with_previous(key(0x17))
}

const HERE: SealContext<'static> = SealContext {
    table: "buckets",
    row_id: "0190c3a2-7b1e-7c4d-9f00-000000000001",
    field: "s3_secret_key",
};

/// The error the format promises for bytes that are not an intact seal for `ctx`:
/// malformed, then unknown key, then failed authentication.
fn expected_error(keyring: &Keyring, sealed: &[u8]) -> &'static str {
    if !sealed.starts_with(b"MPS1") || sealed.len() < HEADER + TAG {
        return "Format";
    }
    let known = [keyring.current()]
        .into_iter()
        .map(key_id)
        .chain([key_id(&key(0x17))])
        .any(|id| id == sealed[4..12]);
    if known { "Integrity" } else { "UnknownKey" }
}

fn name(e: &SealError) -> &'static str {
    match e {
        SealError::Format => "Format",
        SealError::UnknownKey => "UnknownKey",
        SealError::Integrity => "Integrity",
        SealError::Random => "Random",
        SealError::Seal => "Seal",
    }
}

/// Bytes that are not an intact seal for `ctx` must fail to open, with the right error;
/// the helpers that read the header must agree with the format.
fn check_forgery(keyring: &Keyring, ctx: &SealContext, sealed: &[u8]) -> Result<(), TestCaseError> {
    let opened = open(keyring, ctx, sealed);
    let expected = expected_error(keyring, sealed);
    ensure(opened.as_ref().err().map(name) == Some(expected), || {
        format!(
            "{} bytes {:02x?}: expected {expected}, got {:?}",
            sealed.len(),
            sealed,
            opened.as_ref().map(|_| "opened")
        )
    })?;
    ensure(reseal(keyring, ctx, sealed).is_err(), || {
        "resealed a forgery".into()
    })?;
    let well_formed = expected != "Format";
    ensure(sealed_key_id(sealed).is_some() == well_formed, || {
        format!("sealed_key_id of {sealed:02x?}")
    })?;
    let current = key_id(keyring.current());
    ensure(
        needs_reseal(keyring, sealed) == (!well_formed || sealed[4..12] != current[..]),
        || format!("needs_reseal of {sealed:02x?}"),
    )?;
    // Messages name no bytes of the value.
    let message = opened
        .err()
        .map(|e| format!("{e} {e:?}"))
        .unwrap_or_default();
    let tail = hex::encode(&sealed[sealed.len().saturating_sub(8)..]);
    ensure(sealed.len() < 8 || !message.contains(&tail), || {
        message.clone()
    })
}

/// A corpus file: `ok-*` is an intact seal of the keyring above for `HERE` and must open
/// (and reseal); every other file must not.
fn check_corpus_file(file: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let keyring = keyring();
    if file.starts_with("ok-") {
        let opened =
            open(&keyring, &HERE, bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let resealed =
            reseal(&keyring, &HERE, bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        let again =
            open(&keyring, &HERE, &resealed).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        ensure(again.expose_secret() == opened.expose_secret(), || {
            "reseal changed the value".into()
        })?;
        return ensure(!needs_reseal(&keyring, &resealed), || {
            "reseal kept the old key".into()
        });
    }
    check_forgery(&keyring, &HERE, bytes)
}

fn context() -> impl Strategy<Value = (String, String, String)> {
    ("[a-z_]{0,12}", "[0-9a-f-]{0,40}", "[a-z_]{0,16}")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sealed_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        check_forgery(&keyring(), &HERE, &bytes)?;
    }

    #[test]
    fn sealed_headers_of_known_keys_with_any_body(
        current in any::<bool>(),
        nonce_and_body in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let keyring = keyring();
        let id = if current { key_id(keyring.current()) } else { key_id(&key(0x17)) };
        let bytes = [b"MPS1".as_slice(), &id, &nonce_and_body].concat();
        check_forgery(&keyring, &HERE, &bytes)?;
    }

    #[test]
    fn sealed_values_open_only_untouched_and_in_place(
        secret in prop::collection::vec(any::<u8>(), 0..200),
        (table, row, field) in context(),
        old_key in any::<bool>(),
        moved in context(),
    ) {
        let keyring = keyring();
        let sealer = if old_key { Keyring::new(key(0x17)) } else { keyring.clone() };
        let ctx = SealContext { table: &table, row_id: &row, field: &field };
        let sealed = seal(&sealer, &ctx, &secret).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(sealed.len(), HEADER + secret.len() + TAG);
        let opened = open(&keyring, &ctx, &sealed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(opened.expose_secret(), &secret);
        prop_assert_eq!(needs_reseal(&keyring, &sealed), old_key);

        // The same bytes in another row or field.
        let elsewhere = SealContext { table: &moved.0, row_id: &moved.1, field: &moved.2 };
        if moved != (table.clone(), row.clone(), field.clone()) {
            check_forgery(&keyring, &elsewhere, &sealed)?;
        }
        // A keyring without the sealing key.
        let stranger = Keyring::new(key(if old_key { 0x42 } else { 0x17 }));
        prop_assert!(matches!(open(&stranger, &ctx, &sealed), Err(SealError::UnknownKey)));
    }

    #[test]
    fn sealed_values_mutated(
        secret in prop::collection::vec(any::<u8>(), 0..64),
        edits in byte_edits(),
        flip in prop::option::of((any::<usize>(), 0u32..8)),
    ) {
        let keyring = keyring();
        let sealed = seal(&keyring, &HERE, &secret).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut altered = apply(sealed.clone(), &edits);
        if let Some((at, bit)) = flip
            && !altered.is_empty()
        {
            let at = at % altered.len();
            altered[at] ^= 1 << bit;
        }
        if altered == sealed {
            let opened = open(&keyring, &HERE, &altered).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(opened.expose_secret(), &secret);
        } else {
            check_forgery(&keyring, &HERE, &altered)?;
        }
    }
}

#[test]
fn sealed_corpus() {
    replay("sealed", check_corpus_file);
}
