//! DICOMweb (PS3.18): the application side of the `/dicomweb` routes, with no HTTP.

pub mod stow;
