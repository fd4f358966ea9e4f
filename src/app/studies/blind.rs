//! The blind indexes of an instance's sealed PatientID and AccessionNumber, which let the
//! DICOMweb search match them exactly while the database holds neither in the clear.
//! Written at indexing; recomputed by a key rotation (the key derives from the master key).

use secrecy::ExposeSecret as _;

use super::index;
use crate::app::error::AppError;
use crate::infra::crypto::blind::BlindKey;
use crate::infra::crypto::secrets::{self, Keyring};
use crate::infra::db::DbConnection;
use crate::infra::db::repo::dicom_instances as repo;
use crate::infra::dicom::PatientAttributes;

const PATIENT_ID: &str = "patient_id";
const ACCESSION: &str = "accession_number";

/// The blind index columns of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientBlind {
    pub patient_id: Option<String>,
    pub accession: Option<String>,
    pub key_id: Option<String>,
}

impl PatientBlind {
    /// The indexes of `patient` under `key`.
    pub fn of(key: &BlindKey, patient: &PatientAttributes) -> Self {
        Self {
            patient_id: patient
                .patient_id
                .as_deref()
                .map(|v| key.index(PATIENT_ID, v)),
            accession: patient
                .accession_number
                .as_deref()
                .map(|v| key.index(ACCESSION, v)),
            key_id: Some(key.key_id().to_string()),
        }
    }
}

/// The key that writes and searches blind indexes now: the current master key's.
pub fn current_key(keyring: &Keyring) -> BlindKey {
    BlindKey::of(keyring.current())
}

/// What a PatientID query matches against.
pub fn patient_id(key: &BlindKey, value: &str) -> String {
    key.index(PATIENT_ID, value)
}

/// What an AccessionNumber query matches against.
pub fn accession(key: &BlindKey, value: &str) -> String {
    key.index(ACCESSION, value)
}

/// Recomputes, under `keyring`'s current key, the blind indexes of up to `limit` sealed
/// records that lack them or were computed under another key; returns how many it wrote.
/// A record that does not open is logged and left (rotation reports those through the
/// re-seal, which fails first).
pub fn refresh(conn: &mut DbConnection, keyring: &Keyring, limit: i64) -> Result<usize, AppError> {
    let key = current_key(keyring);
    let stale = repo::stale_blind(conn, key.key_id(), limit)?;
    let mut done = 0;
    for (id, sealed) in stale {
        let plain = secrets::open(keyring, &index::seal_context(&id), &sealed)
            .map_err(|e| AppError::internal(format!("DICOM instance {id}: {e}")))?;
        let patient: PatientAttributes =
            serde_json::from_slice(plain.expose_secret()).map_err(AppError::internal)?;
        let blind = PatientBlind::of(&key, &patient);
        repo::set_blind(
            conn,
            &id,
            blind.patient_id.as_deref(),
            blind.accession.as_deref(),
            key.key_id(),
        )?;
        done += 1;
    }
    Ok(done)
}

/// Every stale record at once (key rotation, inside its transaction).
pub fn refresh_all(conn: &mut DbConnection, keyring: &Keyring) -> Result<usize, AppError> {
    const BATCH: i64 = 500;
    let mut total = 0;
    loop {
        let n = refresh(conn, keyring, BATCH)?;
        total += n;
        if i64::try_from(n).map_or(true, |n| n < BATCH) {
            return Ok(total);
        }
    }
}
