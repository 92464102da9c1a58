//! Tests of the cosmos store.
