//! Unit tests of the tantivy store.
