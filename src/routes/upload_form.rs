//! Being written: see issue 5.
crate::route_table! {}
