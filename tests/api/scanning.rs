//! Being written: see issue 5.
