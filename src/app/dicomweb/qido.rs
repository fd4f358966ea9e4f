//! QIDO-RS searches: the key owner's studies, series or instances that match, as DICOM
//! JSON data sets with the level's default attributes (PS3.18 10.6.3.3) plus what
//! `includefield` and the matching keys ask for. PatientID and AccessionNumber are matched
//! through their blind indexes; patient attributes are opened from the seal only when the
//! answer includes one.

use std::collections::{BTreeMap, BTreeSet};

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
    let page = ctx
        .db
        .run(move |conn| {
            let keys = repo::matching_keys(conn, &owner_id, level, &filters, limit, offset)?;
            let reps = repo::representatives(conn, &owner_id, level, &keys)?;
            let counts = match level {
                Level::Instance => Vec::new(),
                _ => repo::counts(conn, &owner_id, level, &keys)?,
            };
            let modalities = match level {
                Level::Study => repo::modalities(conn, &owner_id, &keys)?,
                _ => Vec::new(),
            };
            Ok::<_, AppError>(Page {
                keys,
                reps,
                counts,
                modalities,
            })
        })
        .await?;
    let wanted = Wanted::new(&search);
    let reps: BTreeMap<&str, &InstanceRow> = page
        .reps
        .iter()
        .filter_map(|r| level_uid(level, r).map(|k| (k, r)))
        .collect();
    let counts: BTreeMap<&str, (i64, i64)> = page
        .counts
        .iter()
        .filter_map(|(k, i, s)| k.as_deref().map(|k| (k, (*i, *s))))
        .collect();
    let mut modalities: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (study, modality) in &page.modalities {
        if let (Some(study), Some(modality)) = (study, modality) {
            modalities.entry(study).or_default().push(modality.clone());
        }
    }
    let mut out = Vec::with_capacity(page.keys.len());
    for key in &page.keys {
        let Some(rep) = reps.get(key.as_str()).copied() else {
            continue;
        };
        let (instances, series) = counts.get(key.as_str()).copied().unwrap_or((1, 1));
        let mut ds = DataSet::default();
        // Every level carries what its instance says of its study, series and itself;
        // `retain` below keeps what the level answers with.
        study_into(&mut ds, rep);
        series_into(&mut ds, rep);
        ds.extend(instance_set(rep, base));
        match level {
            Level::Study => {
                let mut list = modalities.remove(key.as_str()).unwrap_or_default();
                list.sort();
                ds.texts(json::MODALITIES_IN_STUDY, &list);
                ds.number(json::NUMBER_OF_STUDY_RELATED_SERIES, Some(series));
                ds.number(json::NUMBER_OF_STUDY_RELATED_INSTANCES, Some(instances));
                ds.text(json::RETRIEVE_URL, Some(&format!("{base}/studies/{key}")));
            }
            Level::Series => {
                ds.number(json::NUMBER_OF_SERIES_RELATED_INSTANCES, Some(instances));
                let study = rep.study_uid.as_deref().unwrap_or_default();
                ds.text(
                    json::RETRIEVE_URL,
                    Some(&format!("{base}/studies/{study}/series/{key}")),
                );
            }
            Level::Instance => {}
        }
        if wanted.needs_patient() {
            patient_into(&mut ds, &patient_of(ctx, &[rep])?);
        }
        ds.retain(|attr| wanted.keeps(attr, level));
        out.push(ds);
    }
    Ok(out)
}

/// One page of a search, as read from the database.
struct Page {
    keys: Vec<String>,
    reps: Vec<InstanceRow>,
    counts: Vec<(Option<String>, i64, i64)>,
    modalities: Vec<repo::Pair>,
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

    /// `includefield=all` means every attribute of the level and the levels above it.
    fn keeps(&self, attr: Attr, level: Level) -> bool {
        !below(attr, level) && (self.all || self.these.contains(&attr))
    }

    fn needs_patient(&self) -> bool {
        self.all || json::PATIENT.iter().any(|a| self.these.contains(a))
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

/// Attributes of a level below `level` (an instance's at study level, say), which an
/// answer at `level` never carries: they differ between its instances.
fn below(attr: Attr, level: Level) -> bool {
    let series = [
        json::SERIES_INSTANCE_UID,
        json::MODALITY,
        json::SERIES_DESCRIPTION,
        json::SERIES_NUMBER,
        json::BODY_PART_EXAMINED,
        json::NUMBER_OF_SERIES_RELATED_INSTANCES,
    ];
    let instance = [
        json::SOP_INSTANCE_UID,
        json::SOP_CLASS_UID,
        json::INSTANCE_NUMBER,
        json::NUMBER_OF_FRAMES,
    ];
    match level {
        Level::Study => series.contains(&attr) || instance.contains(&attr),
        Level::Series => instance.contains(&attr),
        Level::Instance => false,
    }
}

/// What an instance says of its study.
pub(super) fn study_into(ds: &mut DataSet, r: &InstanceRow) {
    ds.text(json::STUDY_INSTANCE_UID, r.study_uid.as_deref());
    ds.text(json::STUDY_DATE, r.study_date.as_deref());
    ds.text(json::STUDY_TIME, r.study_time.as_deref());
    ds.text(json::STUDY_DESCRIPTION, r.study_description.as_deref());
}

/// What an instance says of its series.
pub(super) fn series_into(ds: &mut DataSet, r: &InstanceRow) {
    ds.text(json::SERIES_INSTANCE_UID, r.series_uid.as_deref());
    ds.text(json::MODALITY, r.modality.as_deref());
    ds.text(json::SERIES_DESCRIPTION, r.series_description.as_deref());
    ds.number(json::SERIES_NUMBER, r.series_number.map(i64::from));
    ds.text(json::BODY_PART_EXAMINED, r.body_part.as_deref());
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
