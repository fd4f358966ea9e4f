//! Upload building blocks: safe file names, magic-byte checks, tus header parsing and the
//! clamd client. Pure and independently tested; the pipeline and the tus routes use them.

pub mod filename;
pub mod scan;
pub mod sniff;
pub mod tus_headers;
