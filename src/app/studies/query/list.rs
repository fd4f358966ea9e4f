//! The list of studies: one pass for the counts, one for modalities and uploaders, and
//! the DICOMDIR check over every DICOMDIR in scope.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{StudySummary, as_entries, as_stored, entries_of};
use crate::app::error::AppError;
use crate::app::studies::completeness;
use crate::app::studies::scope::StudyScope;
use crate::app::uploads::UploadContext;
use crate::infra::db::repo::studies as repo;
use crate::infra::db::repo::users;
use crate::infra::db::{DbConnection, DbError};

/// Every study in scope, newest upload first.
pub async fn list(ctx: &UploadContext, scope: &StudyScope) -> Result<Vec<StudySummary>, AppError> {
    let scope = scope.clone();
    ctx.db
        .run(move |conn| Ok::<_, AppError>(summaries(conn, &scope)?))
        .await
}

fn summaries(conn: &mut DbConnection, scope: &StudyScope) -> Result<Vec<StudySummary>, DbError> {
    let owner = scope.owner_id();
    let rows = repo::list(conn, owner)?;
    let facets = repo::facets(conn, owner)?;
    let ids: BTreeSet<&str> = facets.iter().map(|(_, _, user)| user.as_str()).collect();
    let ids: Vec<&str> = ids.into_iter().collect();
    let emails = users::emails_by_id(conn, &ids)?;
    let mut modalities: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut uploaders: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for (study, modality, user) in &facets {
        let Some(study) = study.as_deref() else {
            continue;
        };
        if let Some(modality) = modality.as_deref() {
            modalities.entry(study).or_default().insert(modality);
        }
        let label = emails.get(user).cloned().unwrap_or_else(|| user.clone());
        uploaders.entry(study).or_default().insert(label);
    }
    let missing = missing_everywhere(conn, owner)?;
    let mut out: Vec<StudySummary> = rows
        .into_iter()
        .filter_map(|row| {
            let study_uid = row.study_uid.clone()?;
            let study = study_uid.as_str();
            Some(StudySummary::from_row(
                row,
                modalities
                    .get(study)
                    .into_iter()
                    .flatten()
                    .map(|m| m.to_string()),
                uploaders.get(study).into_iter().flatten().cloned(),
                missing.get(study).map_or(0, Vec::len),
            ))
        })
        .collect();
    out.sort_by(|a, b| {
        b.first_upload
            .cmp(&a.first_upload)
            .then_with(|| a.study_uid.cmp(&b.study_uid))
    });
    Ok(out)
}

/// What every DICOMDIR in scope lists and the server does not hold, by study: the
/// DICOMDIRs, their entries, and the counted instances of the studies and batches they
/// name (bounded by the size of the DICOMDIRs, not by everything stored).
fn missing_everywhere(
    conn: &mut DbConnection,
    owner: Option<&str>,
) -> Result<BTreeMap<String, Vec<String>>, DbError> {
    let directories = repo::all_directories(conn, owner)?;
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
