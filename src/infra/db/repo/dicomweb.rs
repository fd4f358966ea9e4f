//! DICOMweb searches and retrievals over dicom_instances: the counted instances (state
//! `indexed`, upload completed, the same rule as the study pages and ZIP) of one owner,
//! narrowed by the search's matching keys. A search first pages the distinct keys of its
//! level (study, series or instance UIDs) in SQL, then reads one representative instance
//! and the counts of each key of that page, so memory follows the page asked for, not the
//! size of its studies or of the owner's archive.

use diesel::dsl::{count, count_star, min};
use diesel::prelude::*;

use crate::infra::db::schema::{dicom_instances, uploads};
use crate::infra::db::{DbConnection, DbError, MultiBackend};

const INDEXED: &str = "indexed";
const COMPLETED: &str = "completed";
/// Most values bound in one `IN (...)` list.
const IN_CHUNK: usize = 900;

/// The level a search answers at: which UID is one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Study,
    Series,
    Instance,
}

/// Matching keys, already validated and (for PatientID and AccessionNumber) turned into
/// blind indexes. Empty lists and `None` match everything.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub study_uids: Vec<String>,
    pub series_uids: Vec<String>,
    pub sop_uids: Vec<String>,
    pub modality: Option<String>,
    pub patient_id_blind: Option<String>,
    pub accession_blind: Option<String>,
    /// Inclusive bounds, `YYYYMMDD` (text order is date order for these).
    pub date_from: Option<String>,
    pub date_to: Option<String>,
}

type Joined = diesel::dsl::InnerJoin<dicom_instances::table, uploads::table>;
type Boxed = diesel::dsl::IntoBoxed<'static, Joined, MultiBackend>;

/// The owner's counted instances matching `f`.
fn matching(owner: &str, f: &Filters) -> Boxed {
    let mut q = dicom_instances::table
        .inner_join(uploads::table)
        .filter(dicom_instances::user_id.eq(owner.to_string()))
        .filter(dicom_instances::state.eq(INDEXED))
        .filter(uploads::status.eq(COMPLETED))
        .filter(dicom_instances::study_uid.is_not_null())
        .into_boxed();
    if !f.study_uids.is_empty() {
        q = q.filter(dicom_instances::study_uid.eq_any(f.study_uids.clone()));
    }
    if !f.series_uids.is_empty() {
        q = q.filter(dicom_instances::series_uid.eq_any(f.series_uids.clone()));
    }
    if !f.sop_uids.is_empty() {
        q = q.filter(dicom_instances::sop_instance_uid.eq_any(f.sop_uids.clone()));
    }
    if let Some(m) = &f.modality {
        q = q.filter(dicom_instances::modality.eq(m.clone()));
    }
    if let Some(b) = &f.patient_id_blind {
        q = q.filter(dicom_instances::patient_id_blind.eq(b.clone()));
    }
    if let Some(b) = &f.accession_blind {
        q = q.filter(dicom_instances::accession_blind.eq(b.clone()));
    }
    if let Some(d) = &f.date_from {
        q = q.filter(dicom_instances::study_date.ge(d.clone()));
    }
    if let Some(d) = &f.date_to {
        q = q.filter(dicom_instances::study_date.le(d.clone()));
    }
    q
}

/// The distinct UIDs of `level` that have a matching instance, in UID order, one page.
pub fn matching_keys(
    conn: &mut DbConnection,
    owner: &str,
    level: Level,
    f: &Filters,
    limit: i64,
    offset: i64,
) -> Result<Vec<String>, DbError> {
    let q = matching(owner, f);
    let rows: Vec<Option<String>> = match level {
        Level::Study => q
            .select(dicom_instances::study_uid)
            .distinct()
            .order(dicom_instances::study_uid.asc())
            .limit(limit)
            .offset(offset)
            .load(conn)?,
        Level::Series => q
            .select(dicom_instances::series_uid)
            .distinct()
            .order(dicom_instances::series_uid.asc())
            .limit(limit)
            .offset(offset)
            .load(conn)?,
        Level::Instance => q
            .select(dicom_instances::sop_instance_uid)
            .distinct()
            .order(dicom_instances::sop_instance_uid.asc())
            .limit(limit)
            .offset(offset)
            .load(conn)?,
    };
    Ok(rows.into_iter().flatten().collect())
}

/// One counted instance, with what the DICOM JSON model and a retrieval need.
#[derive(Debug, Clone, Queryable)]
pub struct InstanceRow {
    pub upload_id: String,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
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
    pub patient_sealed: Option<Vec<u8>>,
    pub declared_size: i64,
}

macro_rules! instance_columns {
    () => {
        (
            dicom_instances::upload_id,
            dicom_instances::study_uid,
            dicom_instances::series_uid,
            dicom_instances::sop_instance_uid,
            dicom_instances::sop_class_uid,
            dicom_instances::transfer_syntax_uid,
            dicom_instances::modality,
            dicom_instances::study_date,
            dicom_instances::study_time,
            dicom_instances::study_description,
            dicom_instances::series_description,
            dicom_instances::series_number,
            dicom_instances::instance_number,
            dicom_instances::number_of_frames,
            dicom_instances::body_part,
            dicom_instances::patient_sealed,
            uploads::declared_size,
        )
    };
}

/// Every counted instance of the owner matching `f` (a retrieval's study, series or
/// instance), by study, series and instance number.
pub fn instances(
    conn: &mut DbConnection,
    owner: &str,
    f: &Filters,
) -> Result<Vec<InstanceRow>, DbError> {
    Ok(matching(owner, f)
        .order((
            dicom_instances::study_uid.asc(),
            dicom_instances::series_number.asc(),
            dicom_instances::series_uid.asc(),
            dicom_instances::instance_number.asc(),
            dicom_instances::sop_instance_uid.asc(),
        ))
        .select(instance_columns!())
        .load::<InstanceRow>(conn)?)
}

/// Indexed instances of completed uploads of one owner: what a search counts.
macro_rules! counted {
    ($owner:expr) => {
        dicom_instances::table
            .inner_join(uploads::table)
            .filter(dicom_instances::user_id.eq($owner))
            .filter(dicom_instances::state.eq(INDEXED))
            .filter(uploads::status.eq(COMPLETED))
    };
}

/// One instance standing for each study or series of `keys` (its first upload): the
/// attributes a study or series shares are read from it, so a page of large studies is
/// one row each, not every instance.
pub fn representatives(
    conn: &mut DbConnection,
    owner: &str,
    level: Level,
    keys: &[String],
) -> Result<Vec<InstanceRow>, DbError> {
    let mut ids: Vec<String> = Vec::new();
    for chunk in keys.chunks(IN_CHUNK) {
        let firsts: Vec<Option<String>> = match level {
            Level::Study => counted!(owner)
                .filter(dicom_instances::study_uid.eq_any(chunk))
                .group_by(dicom_instances::study_uid)
                .select(min(dicom_instances::upload_id))
                .load(conn)?,
            Level::Series => counted!(owner)
                .filter(dicom_instances::series_uid.eq_any(chunk))
                .group_by(dicom_instances::series_uid)
                .select(min(dicom_instances::upload_id))
                .load(conn)?,
            Level::Instance => counted!(owner)
                .filter(dicom_instances::sop_instance_uid.eq_any(chunk))
                .group_by(dicom_instances::sop_instance_uid)
                .select(min(dicom_instances::upload_id))
                .load(conn)?,
        };
        ids.extend(firsts.into_iter().flatten());
    }
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        out.extend(
            counted!(owner)
                .filter(dicom_instances::upload_id.eq_any(chunk))
                .select(instance_columns!())
                .load::<InstanceRow>(conn)?,
        );
    }
    Ok(out)
}

/// Instances and distinct series of each study or series of `keys`:
/// `(uid, instances, series)`.
pub fn counts(
    conn: &mut DbConnection,
    owner: &str,
    level: Level,
    keys: &[String],
) -> Result<Vec<(Option<String>, i64, i64)>, DbError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(IN_CHUNK) {
        out.extend(match level {
            Level::Study => counted!(owner)
                .filter(dicom_instances::study_uid.eq_any(chunk))
                .group_by(dicom_instances::study_uid)
                .select((
                    dicom_instances::study_uid,
                    count_star(),
                    count(dicom_instances::series_uid).aggregate_distinct(),
                ))
                .load::<(Option<String>, i64, i64)>(conn)?,
            Level::Series | Level::Instance => counted!(owner)
                .filter(dicom_instances::series_uid.eq_any(chunk))
                .group_by(dicom_instances::series_uid)
                .select((
                    dicom_instances::series_uid,
                    count_star(),
                    count(dicom_instances::series_uid).aggregate_distinct(),
                ))
                .load::<(Option<String>, i64, i64)>(conn)?,
        });
    }
    Ok(out)
}

/// A (study, modality) pair.
pub type Pair = (Option<String>, Option<String>);

/// The distinct (study, modality) pairs of the studies of `keys`.
pub fn modalities(
    conn: &mut DbConnection,
    owner: &str,
    keys: &[String],
) -> Result<Vec<Pair>, DbError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(IN_CHUNK) {
        out.extend(
            counted!(owner)
                .filter(dicom_instances::study_uid.eq_any(chunk))
                .select((dicom_instances::study_uid, dicom_instances::modality))
                .distinct()
                .load::<Pair>(conn)?,
        );
    }
    Ok(out)
}
