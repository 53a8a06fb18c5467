//! End-to-end tests live in `tests/sync`; this library is empty.
