//! DICOMweb read side (PS3.18): QIDO-RS searches, WADO-RS retrievals and metadata, Accept
//! negotiation, who sees what, the blind indexes behind PatientID and AccessionNumber
//! matching, and the dicomweb-client library driven against a running server.

mod access;
mod client;
mod phi;
mod qido;
mod qido_bad;
mod rate;
mod stow;
mod support;
mod wado;
mod wado_accept;
