//! DICOMweb read side (PS3.18): QIDO-RS searches (`qido`), WADO-RS retrievals of stored
//! instances and their metadata (`wado`), over the study index. Only the key owner's
//! counted instances are visible (completed uploads, the same rule as the study ZIP), and
//! patient attributes come from the sealed record, opened for that owner only. The answers
//! are built in the DICOM JSON model (`json`, PS3.18 F.2); the search's parameters are
//! parsed in `search`. STOW-RS stores instances through the one upload pipeline (`stow`).

pub mod json;
pub mod qido;
pub mod search;
pub mod stow;
pub mod wado;

use crate::app::error::AppError;
use crate::domain::DicomUid;

/// A UID from a URL path or query, or a 400 saying why it is not one.
pub fn uid(what: &str, raw: &str) -> Result<DicomUid, AppError> {
    DicomUid::parse(raw).ok_or_else(|| {
        AppError::BadRequest(format!(
            "{what} is not a valid UID: at most {} characters, digits and dots only",
            DicomUid::MAX_LEN
        ))
    })
}
