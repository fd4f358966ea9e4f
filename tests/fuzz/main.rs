//! Property-based fuzzing of the parsers that take input from outside: the tus headers, the
//! file name normaliser, the magic-byte sniffer, the upload request, and the sealed-secret
//! format. Each target asserts properties (round trips, the documented rules written out
//! independently, idempotence), not only the absence of panics, and replays its committed
//! corpus (`tests/fuzz/corpus/<target>/`) on every run.
//!
//! Cases per property: `MEDPORT_FUZZ_CASES` (default 20,000, which keeps the binary under a
//! minute). A long run: `MEDPORT_FUZZ_CASES=1000000 cargo test --release --test fuzz`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod filename;
mod sealed;
mod sniff;
mod tus_headers;
mod upload_request;
