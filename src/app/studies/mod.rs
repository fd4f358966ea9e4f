//! DICOM studies: what completed DICOM uploads say about themselves (`index`), grouped by
//! StudyInstanceUID within what the viewer may see (`query`), and a study's files as one
//! streamed ZIP (`archive`).

pub mod archive;
pub mod blind;
mod completeness;
pub mod index;
pub mod query;
mod scope;

pub use scope::StudyScope;
