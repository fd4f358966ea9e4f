//! The one upload pipeline. tus and the plain form both go through it:
//!
//! authorise the bucket -> validate name, type and size -> reserve quota (`create`) ->
//! sniff the first bytes -> stream fixed-size parts to the bucket's `BlobStore`, recording
//! each part and the offset only once the part is durable (`append`) -> complete with the
//! server's own part list -> verify size, encryption and SHA-256 -> scan -> audit (`finish`).
//!
//! Nothing about an upload lives only in one process: the offset, the parts, the digest
//! state and the partial tail are in the database and the bucket, and a lease in the row
//! gives one writer at a time, so any instance can continue any upload.

mod append;
mod create;
mod finish;
mod in_flight;
pub mod leftovers;
mod part_buffers;
mod records;
pub mod request;
mod room;
mod storage_io;

pub use append::{Appended, append, create_and_receive, writable};
pub use create::create;
pub use finish::{resume_completion, terminate};
pub use in_flight::PartBudget;
pub use part_buffers::PartBuffers;
pub use request::{RawRequest, UploadRequest};
pub use room::room_left;
