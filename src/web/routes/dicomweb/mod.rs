//! DICOMweb (PS3.18) under `/dicomweb`, authenticated by an API key only.

pub mod stow;
