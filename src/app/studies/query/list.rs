//! The list of studies, a page at a time: the page's counts from the study summaries,
//! its modalities and uploaders, and the DICOMDIR check over the DICOMDIRs that concern
//! the page's studies (bounded by the page, not by everything stored).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{StudySummary, as_entries, as_stored, entries_of};
use crate::app::error::AppError;
use crate::app::studies::completeness;
use crate::app::studies::scope::StudyScope;
use crate::app::uploads::UploadContext;
use crate::infra::db::repo::studies as repo;
use crate::infra::db::repo::users;
use crate::infra::db::{DbConnection, DbError};

/// A window of a list: studies of the list, or a study's instances in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPage {
    pub offset: u64,
    pub limit: u64,
}

impl ListPage {
    /// Studies on one page of the list page.
    pub const SIZE: u64 = 50;
    /// The most the API gives in one answer.
    pub const MAX_LIMIT: u64 = 1000;

    /// What the API answers with when it is not told.
    pub const API_DEFAULT: u64 = 100;

    /// `limit` studies from `offset`; a larger limit than [`Self::MAX_LIMIT`] is lowered.
    pub fn window(offset: u64, limit: u64) -> Self {
        Self {
            offset,
            limit: limit.min(Self::MAX_LIMIT),
        }
    }

    /// Page `number` (1-based; 0 counts as 1) of [`Self::SIZE`] studies.
    pub fn number(number: u64) -> Self {
        Self {
            offset: number.saturating_sub(1).saturating_mul(Self::SIZE),
            limit: Self::SIZE,
        }
    }
}

/// One page of the list, and how many studies there are in all.
#[derive(Debug, Clone)]
pub struct StudyList {
    pub studies: Vec<StudySummary>,
    pub total: u64,
    pub page: ListPage,
}

/// `page` of the studies in scope, newest upload first.
pub async fn list(
    ctx: &UploadContext,
    scope: &StudyScope,
    page: ListPage,
) -> Result<StudyList, AppError> {
    let scope = scope.clone();
    ctx.db
        .run(move |conn| Ok::<_, AppError>(summaries(conn, &scope, page)?))
        .await
}

fn summaries(
    conn: &mut DbConnection,
    scope: &StudyScope,
    page: ListPage,
) -> Result<StudyList, DbError> {
    let owner = scope.owner_id();
    let total = u64::try_from(repo::study_count(conn, owner)?).unwrap_or(0);
    let rows = repo::list(conn, owner, page.offset, page.limit)?;
    let studies: Vec<String> = rows.iter().map(|r| r.study_uid.clone()).collect();
    let facets = repo::facets(conn, owner, &studies)?;
    let ids: BTreeSet<&str> = facets.iter().map(|(_, _, user)| user.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let emails = users::emails_by_id(conn, &ids)?;
    let mut modalities: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut uploaders: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for (study, modality, user) in &facets {
        if let Some(modality) = modality.as_deref() {
            modalities.entry(study).or_default().insert(modality);
        }
        let label = emails.get(user).cloned().unwrap_or_else(|| user.clone());
        uploaders.entry(study).or_default().insert(label);
    }
    let missing = missing_in(conn, owner, &studies)?;
    let studies = rows
        .into_iter()
        .map(|row| {
            let study_uid = row.study_uid.clone();
            let study = study_uid.as_str();
            StudySummary::from_row(
                row,
                modalities
                    .get(study)
                    .into_iter()
                    .flatten()
                    .map(|m| m.to_string()),
                uploaders.get(study).into_iter().flatten().cloned(),
                missing.get(study).map_or(0, Vec::len),
            )
        })
        .collect();
    Ok(StudyList {
        studies,
        total,
        page,
    })
}

/// What the DICOMDIRs that concern `studies` list and the server does not hold, by study:
/// those DICOMDIRs, their entries, and the counted instances of the studies and batches
/// they name.
fn missing_in(
    conn: &mut DbConnection,
    owner: Option<&str>,
    studies: &[String],
) -> Result<BTreeMap<String, Vec<String>>, DbError> {
    let batches = repo::batches_of(conn, owner, studies)?;
    let directories = repo::directories_for(conn, owner, studies, &batches)?;
    if directories.is_empty() {
        return Ok(BTreeMap::new());
    }
    let entries = entries_of(conn, &directories)?;
    let studies: BTreeSet<String> = entries.iter().filter_map(|e| e.study_uid.clone()).collect();
    // Batches matter only for entries that name no study (they belong to what came with
    // their DICOMDIR); most DICOMDIRs name the study in every record.
    let batches: BTreeSet<String> = if entries.iter().any(|e| e.study_uid.is_none()) {
        directories
            .iter()
            .filter_map(|d| d.batch_id.clone())
            .collect()
    } else {
        BTreeSet::new()
    };
    let studies: Vec<String> = studies.into_iter().collect();
    let batches: Vec<String> = batches.into_iter().collect();
    let stored = repo::stored_in(conn, owner, &studies, &batches)?;
    Ok(completeness::missing(
        &as_entries(&directories, &entries),
        &as_stored(&stored),
        None,
    ))
}
