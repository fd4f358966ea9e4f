//! STOW-RS: `POST /dicomweb/studies[/{study}]`, each part through the upload pipeline.

mod access;
mod bad_input;
mod curl;
mod quota;
mod scanning;
mod store;
mod support;
