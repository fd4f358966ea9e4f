//! Validated values. Handlers turn raw input into these at the edge and work with them only.

mod local_path;

pub use local_path::LocalPath;
