//! Reading what a DICOM Part 10 file says about itself, with dicom-rs: the file meta group
//! and the data set up to Pixel Data (never the pixels), or a DICOMDIR's list of the files
//! it references. Synchronous: the caller runs it on a blocking thread over a stream.

use std::io::Read;

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};

/// The Media Storage Directory Storage SOP class: a DICOMDIR.
const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";

/// Longest header read: a data set before Pixel Data is rarely more than a few hundred KiB;
/// a DICOMDIR of a large CD a few MiB. Anything longer is reported as unreadable rather
/// than held in memory.
pub const MAX_HEADER_BYTES: u64 = 64 * 1024 * 1024;

/// Identifying attributes, kept only sealed (PS3.15 calls these patient and study
/// identifiers; the portal shows them to the owner and to admins).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatientAttributes {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub institution_name: Option<String>,
}

impl PatientAttributes {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What one image (or other instance) says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceHeader {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: Option<String>,
    pub transfer_syntax_uid: Option<String>,
    pub modality: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_description: Option<String>,
    pub series_description: Option<String>,
    pub series_number: Option<i32>,
    pub instance_number: Option<i32>,
    pub number_of_frames: Option<i32>,
    pub body_part: Option<String>,
    pub patient: PatientAttributes,
}

/// One file a DICOMDIR lists: its path (ReferencedFileID, `/`-joined, relative to the
/// DICOMDIR's folder) and, when the record says so, its SOP instance and study.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub path: String,
    pub sop_instance_uid: Option<String>,
    pub study_uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Instance(Box<InstanceHeader>),
    Directory(Vec<DirectoryEntry>),
}

/// Why a file that starts like DICOM could not be read; the text is shown to the uploader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("the DICOM header could not be parsed ({0})")]
    Malformed(String),
    #[error("the DICOM header lacks {0}")]
    Missing(&'static str),
    #[error("the DICOM header is longer than {} MiB", MAX_HEADER_BYTES / 1024 / 1024)]
    TooLong,
}

/// Reads a Part 10 stream (preamble included) up to Pixel Data. Stops reading there: the
/// pixels are never read, and at most [`MAX_HEADER_BYTES`] are.
pub fn read(source: impl Read) -> Result<Parsed, Unreadable> {
    let mut limited = source.take(MAX_HEADER_BYTES + 1);
    let object = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Always)
        .read_until(tags::PIXEL_DATA)
        .from_reader(&mut limited);
    if limited.limit() == 0 {
        return Err(Unreadable::TooLong);
    }
    let object = object.map_err(|e| Unreadable::Malformed(first_line(&e.to_string())))?;
    if object
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        == MEDIA_STORAGE_DIRECTORY
    {
        return Ok(Parsed::Directory(directory_entries(&object)));
    }
    instance(&object).map(|h| Parsed::Instance(Box::new(h)))
}

fn instance(object: &DefaultDicomObject) -> Result<InstanceHeader, Unreadable> {
    let meta = object.meta();
    let required = |tag, name| text(object, tag).ok_or(Unreadable::Missing(name));
    let sop_instance_uid = text(object, tags::SOP_INSTANCE_UID)
        .or_else(|| uid(meta.media_storage_sop_instance_uid()))
        .ok_or(Unreadable::Missing("SOPInstanceUID"))?;
    Ok(InstanceHeader {
        study_uid: required(tags::STUDY_INSTANCE_UID, "StudyInstanceUID")?,
        series_uid: required(tags::SERIES_INSTANCE_UID, "SeriesInstanceUID")?,
        sop_instance_uid,
        sop_class_uid: text(object, tags::SOP_CLASS_UID)
            .or_else(|| uid(meta.media_storage_sop_class_uid())),
        transfer_syntax_uid: uid(meta.transfer_syntax()),
        modality: text(object, tags::MODALITY),
        study_date: text(object, tags::STUDY_DATE),
        study_time: text(object, tags::STUDY_TIME),
        study_description: text(object, tags::STUDY_DESCRIPTION),
        series_description: text(object, tags::SERIES_DESCRIPTION),
        series_number: int(object, tags::SERIES_NUMBER),
        instance_number: int(object, tags::INSTANCE_NUMBER),
        number_of_frames: int(object, tags::NUMBER_OF_FRAMES),
        body_part: text(object, tags::BODY_PART_EXAMINED),
        patient: PatientAttributes {
            patient_name: text(object, tags::PATIENT_NAME),
            patient_id: text(object, tags::PATIENT_ID),
            patient_birth_date: text(object, tags::PATIENT_BIRTH_DATE),
            patient_sex: text(object, tags::PATIENT_SEX),
            accession_number: text(object, tags::ACCESSION_NUMBER),
            referring_physician_name: text(object, tags::REFERRING_PHYSICIAN_NAME),
            institution_name: text(object, tags::INSTITUTION_NAME),
        },
    })
}

/// The records of a DICOMDIR that reference a file. Records are taken in the order the
/// sequence holds them, which every writer we know of keeps depth-first, so a record
/// belongs to the last STUDY record before it.
fn directory_entries(object: &DefaultDicomObject) -> Vec<DirectoryEntry> {
    let Some(records) = object
        .get(tags::DIRECTORY_RECORD_SEQUENCE)
        .and_then(|e| e.items())
    else {
        return Vec::new();
    };
    let mut study: Option<String> = None;
    let mut out = Vec::new();
    for record in records {
        if text(record, tags::DIRECTORY_RECORD_TYPE).as_deref() == Some("STUDY") {
            study = text(record, tags::STUDY_INSTANCE_UID);
        }
        let Some(path) = text(record, tags::REFERENCED_FILE_ID) else {
            continue;
        };
        let path = path
            .split('\\')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        if path.is_empty() {
            continue;
        }
        out.push(DirectoryEntry {
            path,
            sop_instance_uid: text(record, tags::REFERENCED_SOP_INSTANCE_UID_IN_FILE),
            study_uid: study.clone(),
        });
    }
    out
}

/// A string attribute, trimmed of DICOM padding; `None` when absent or empty.
fn text(object: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    let value = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!value.is_empty()).then(|| value.to_string())
}

fn int(object: &InMemDicomObject, tag: dicom_core::Tag) -> Option<i32> {
    object.get(tag)?.to_int::<i32>().ok()
}

fn uid(raw: &str) -> Option<String> {
    let value = raw.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!value.is_empty()).then(|| value.to_string())
}

fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests;
