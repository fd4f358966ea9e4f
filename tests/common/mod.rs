//! What more than one test target needs: included by each as `mod common` through a
//! `#[path]` attribute (it is no target of its own).

pub mod s3;
