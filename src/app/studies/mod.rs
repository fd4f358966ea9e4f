//! DICOM studies: what completed DICOM uploads say about themselves (`index`), grouped by
//! StudyInstanceUID within what the viewer may see.

pub mod index;
