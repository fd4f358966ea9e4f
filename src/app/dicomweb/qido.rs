//! QIDO-RS searches: the key owner's studies, series or instances that match, as DICOM
//! JSON data sets with the level's default attributes (PS3.18 10.6.3.3) plus what
//! `includefield` and the matching keys ask for. PatientID and AccessionNumber are matched
//! through their blind indexes; patient attributes are opened from the seal only when the
//! answer includes one.

use std::collections::BTreeSet;

use super::json::{self, Attr, DataSet};
use super::search::{Include, Level, Search};
use crate::app::error::AppError;
use crate::app::studies::{blind, index};
use crate::app::uploads::UploadContext;
use crate::domain::ids::UserId;
use crate::infra::db::repo::dicomweb::{self as repo, Filters, InstanceRow};
use crate::infra::dicom::PatientAttributes;

/// The attributes each level answers with unless asked for fewer or more.
fn defaults(level: Level) -> &'static [Attr] {
    use json::*;
    match level {
        Level::Study => &[
            STUDY_DATE,
            STUDY_TIME,
            ACCESSION_NUMBER,
            INSTANCE_AVAILABILITY,
            MODALITIES_IN_STUDY,
            REFERRING_PHYSICIAN_NAME,
            RETRIEVE_URL,
            PATIENT_NAME,
            PATIENT_ID,
            PATIENT_BIRTH_DATE,
            PATIENT_SEX,
            STUDY_INSTANCE_UID,
            NUMBER_OF_STUDY_RELATED_SERIES,
            NUMBER_OF_STUDY_RELATED_INSTANCES,
        ],
        Level::Series => &[
            MODALITY,
            SERIES_DESCRIPTION,
            RETRIEVE_URL,
            STUDY_INSTANCE_UID,
            SERIES_INSTANCE_UID,
            SERIES_NUMBER,
            NUMBER_OF_SERIES_RELATED_INSTANCES,
        ],
        Level::Instance => &[
            SOP_CLASS_UID,
            SOP_INSTANCE_UID,
            INSTANCE_AVAILABILITY,
            RETRIEVE_URL,
            STUDY_INSTANCE_UID,
            SERIES_INSTANCE_UID,
            INSTANCE_NUMBER,
            NUMBER_OF_FRAMES,
        ],
    }
}

/// Runs `search` over `owner`'s instances. `base` is the `/dicomweb` URL that RetrieveURLs
/// start with.
pub async fn search(
    ctx: &UploadContext,
    owner: &UserId,
    search: Search,
    base: &str,
) -> Result<Vec<DataSet>, AppError> {
    if search.contradictory || search.limit == 0 {
        return Ok(Vec::new());
    }
    let key = blind::current_key(&ctx.keyring);
    let filters = Filters {
        study_uids: search.study_uids.clone(),
        series_uids: search.series_uids.clone(),
        sop_uids: search.sop_uids.clone(),
        modality: search.modality.clone(),
        patient_id_blind: search
            .patient_id
            .as_deref()
            .map(|v| blind::patient_id(&key, v)),
        accession_blind: search
            .accession
            .as_deref()
            .map(|v| blind::accession(&key, v)),
        date_from: search.date_from.clone(),
        date_to: search.date_to.clone(),
    };
    let (owner_id, level, limit, offset) = (
        owner.as_str().to_string(),
        search.level,
        search.limit,
        search.offset,
    );
    let (keys, rows) = ctx
        .db
        .run(move |conn| {
            let keys = repo::matching_keys(conn, &owner_id, level, &filters, limit, offset)?;
            let rows = repo::instances_of(conn, &owner_id, level, &keys)?;
            Ok::<_, AppError>((keys, rows))
        })
        .await?;
    let wanted = Wanted::new(&search);
    let mut out = Vec::with_capacity(keys.len());
    for key in &keys {
        let group: Vec<&InstanceRow> = rows
            .iter()
            .filter(|r| level_uid(level, r) == Some(key.as_str()))
            .collect();
        let Some(first) = group.first() else { continue };
        let patient = if wanted.needs_patient() {
            patient_of(ctx, &group)?
        } else {
            PatientAttributes::default()
        };
        let mut ds = match level {
            Level::Study => study_set(&group, base),
            Level::Series => series_set(&group, base),
            Level::Instance => instance_set(first, base),
        };
        if level != Level::Study {
            // Study attributes, for `includefield=all` and named includes at lower levels.
            let study = study_set(&group, base);
            for attr in [json::STUDY_DATE, json::STUDY_TIME, json::STUDY_DESCRIPTION] {
                if let Some(values) = study.get(attr) {
                    ds.text(attr, values.first().and_then(|v| v.as_str()));
                }
            }
        }
        if level == Level::Instance {
            series_into(&mut ds, first);
        }
        patient_into(&mut ds, &patient);
        ds.retain(|attr| wanted.keeps(attr));
        out.push(ds);
    }
    Ok(out)
}

/// Which attributes an answer keeps.
struct Wanted {
    all: bool,
    these: BTreeSet<Attr>,
}

impl Wanted {
    fn new(search: &Search) -> Self {
        let mut these: BTreeSet<Attr> = defaults(search.level).iter().copied().collect();
        let all = match &search.include {
            Include::All => true,
            Include::These(list) => {
                these.extend(list.iter().copied());
                false
            }
        };
        Self { all, these }
    }

    fn keeps(&self, attr: Attr) -> bool {
        self.all || self.these.contains(&attr)
    }

    fn needs_patient(&self) -> bool {
        json::PATIENT.iter().any(|a| self.keeps(*a))
    }
}

fn level_uid(level: Level, row: &InstanceRow) -> Option<&str> {
    match level {
        Level::Study => row.study_uid.as_deref(),
        Level::Series => row.series_uid.as_deref(),
        Level::Instance => row.sop_instance_uid.as_deref(),
    }
}

/// The patient attributes of a group: its first instance with a seal (an upload's seal
/// opens only as that upload's).
pub(super) fn patient_of(
    ctx: &UploadContext,
    group: &[&InstanceRow],
) -> Result<PatientAttributes, AppError> {
    match group.iter().find_map(|r| {
        r.patient_sealed
            .as_deref()
            .map(|sealed| (r.upload_id.as_str(), sealed))
    }) {
        Some((id, sealed)) => index::open_patient(ctx, id, sealed),
        None => Ok(PatientAttributes::default()),
    }
}

pub(super) fn patient_into(ds: &mut DataSet, p: &PatientAttributes) {
    ds.text(json::PATIENT_NAME, p.patient_name.as_deref());
    ds.text(json::PATIENT_ID, p.patient_id.as_deref());
    ds.text(json::PATIENT_BIRTH_DATE, p.patient_birth_date.as_deref());
    ds.text(json::PATIENT_SEX, p.patient_sex.as_deref());
    ds.text(json::ACCESSION_NUMBER, p.accession_number.as_deref());
    ds.text(
        json::REFERRING_PHYSICIAN_NAME,
        p.referring_physician_name.as_deref(),
    );
    ds.text(json::INSTITUTION_NAME, p.institution_name.as_deref());
}

fn count(n: usize) -> Option<i64> {
    i64::try_from(n).ok()
}

fn study_set(group: &[&InstanceRow], base: &str) -> DataSet {
    let mut ds = DataSet::default();
    let first = group[0];
    let study = first.study_uid.as_deref().unwrap_or_default();
    let modalities: BTreeSet<String> = group.iter().filter_map(|r| r.modality.clone()).collect();
    let series: BTreeSet<&str> = group
        .iter()
        .filter_map(|r| r.series_uid.as_deref())
        .collect();
    ds.text(json::STUDY_INSTANCE_UID, Some(study));
    ds.text(
        json::STUDY_DATE,
        group.iter().find_map(|r| r.study_date.as_deref()),
    );
    ds.text(
        json::STUDY_TIME,
        group.iter().find_map(|r| r.study_time.as_deref()),
    );
    ds.text(
        json::STUDY_DESCRIPTION,
        group.iter().find_map(|r| r.study_description.as_deref()),
    );
    ds.texts(
        json::MODALITIES_IN_STUDY,
        &modalities.into_iter().collect::<Vec<_>>(),
    );
    ds.text(json::INSTANCE_AVAILABILITY, Some("ONLINE"));
    ds.text(json::RETRIEVE_URL, Some(&format!("{base}/studies/{study}")));
    ds.number(json::NUMBER_OF_STUDY_RELATED_SERIES, count(series.len()));
    ds.number(json::NUMBER_OF_STUDY_RELATED_INSTANCES, count(group.len()));
    ds
}

fn series_into(ds: &mut DataSet, r: &InstanceRow) {
    ds.text(json::STUDY_INSTANCE_UID, r.study_uid.as_deref());
    ds.text(json::SERIES_INSTANCE_UID, r.series_uid.as_deref());
    ds.text(json::MODALITY, r.modality.as_deref());
    ds.text(json::SERIES_DESCRIPTION, r.series_description.as_deref());
    ds.number(json::SERIES_NUMBER, r.series_number.map(i64::from));
    ds.text(json::BODY_PART_EXAMINED, r.body_part.as_deref());
}

fn series_set(group: &[&InstanceRow], base: &str) -> DataSet {
    let mut ds = DataSet::default();
    let first = group[0];
    series_into(&mut ds, first);
    let study = first.study_uid.as_deref().unwrap_or_default();
    let series = first.series_uid.as_deref().unwrap_or_default();
    ds.text(
        json::RETRIEVE_URL,
        Some(&format!("{base}/studies/{study}/series/{series}")),
    );
    ds.number(json::NUMBER_OF_SERIES_RELATED_INSTANCES, count(group.len()));
    ds
}

/// One instance's own attributes (without its study's and patient's).
pub(super) fn instance_set(r: &InstanceRow, base: &str) -> DataSet {
    let mut ds = DataSet::default();
    let study = r.study_uid.as_deref().unwrap_or_default();
    let series = r.series_uid.as_deref().unwrap_or_default();
    let sop = r.sop_instance_uid.as_deref().unwrap_or_default();
    ds.text(json::STUDY_INSTANCE_UID, Some(study));
    ds.text(json::SERIES_INSTANCE_UID, Some(series));
    ds.text(json::SOP_INSTANCE_UID, Some(sop));
    ds.text(json::SOP_CLASS_UID, r.sop_class_uid.as_deref());
    ds.number(json::INSTANCE_NUMBER, r.instance_number.map(i64::from));
    ds.number(json::NUMBER_OF_FRAMES, r.number_of_frames.map(i64::from));
    ds.text(json::INSTANCE_AVAILABILITY, Some("ONLINE"));
    ds.text(
        json::RETRIEVE_URL,
        Some(&format!(
            "{base}/studies/{study}/series/{series}/instances/{sop}"
        )),
    );
    ds
}
