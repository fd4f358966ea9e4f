//! DICOM studies: the list and study pages, the JSON API, the ZIP, access control, the
//! DICOMDIR completeness check and the history's batch rows. One file per action.

mod access;
mod api;
mod archive;
mod completeness;
mod fileset;
mod history;
mod list;
mod paging;
mod problems;
mod scale;
mod slices;
pub(crate) mod support;
