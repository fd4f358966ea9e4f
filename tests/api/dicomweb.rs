//! DICOMweb (PS3.18) under `/dicomweb`. One file per action.

mod stow;
