//! One upload as its owner's script sees it: the row, and the UIDs the DICOM index holds
//! for it. Patient attributes are never read here.

use crate::app::error::AppError;
use crate::app::uploads::model::{self, Upload};
use crate::domain::ids::{UploadId, UserId};
use crate::infra::db::Database;
use crate::infra::db::repo::dicom_instances as index;

/// Where a DICOM upload sits in its study, as the index recorded it.
#[derive(Debug, Clone)]
pub struct InstanceUids {
    /// `indexed`, `duplicate`, `conflict`, `unreadable` or `directory`.
    pub state: String,
    pub study_uid: Option<String>,
    pub series_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
}

#[derive(Debug, Clone)]
pub struct UploadDetails {
    pub upload: Upload,
    /// `None` when the upload is not DICOM or was not indexed (yet).
    pub dicom: Option<InstanceUids>,
}

/// `owner`'s upload `id`, or 404 (someone else's upload is not there for them).
pub async fn of_owner(
    db: &Database,
    owner: &UserId,
    id: &UploadId,
) -> Result<UploadDetails, AppError> {
    let (owner, id) = (owner.clone(), id.clone());
    db.run(move |conn| {
        let upload = model::find(conn, &id)?
            .filter(|u| u.user_id == owner)
            .ok_or(AppError::NotFound)?;
        let dicom = index::uids_of(conn, upload.id.as_str())?.map(
            |(state, study_uid, series_uid, sop_instance_uid)| InstanceUids {
                state,
                study_uid,
                series_uid,
                sop_instance_uid,
            },
        );
        Ok(UploadDetails { upload, dicom })
    })
    .await
}
