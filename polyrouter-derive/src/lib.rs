//! `#[derive(Entity)]` for [polyrouter](https://docs.rs/polyrouter).
//!
//! Use it through the re-export `polyrouter::Entity`; the generated code
//! refers to the `polyrouter` crate by its absolute path `::polyrouter`.
//!
//! ```ignore
//! use polyrouter::Entity;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Entity, Serialize, Deserialize)]
//! #[entity(name = "user", key = "id", partition_key = "country")]
//! struct User {
//!     id: String,
//!     country: String,
//!     #[serde(rename = "mail")]
//!     email: String,
//!     #[entity(version)]
//!     version: u64,
//! }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate proc_macro;

mod attrs;
mod case;
mod expand;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `polyrouter::Entity` for a struct with named fields.
///
/// # Struct options: `#[entity(...)]`
///
/// - `name = "user"`: the entity name used in `[entities.NAME]`. Defaults to
///   the struct's name in snake_case (`UserProfile` → `user_profile`).
/// - `key = "id"`: the key field. Defaults to a field marked
///   `#[entity(key)]`, then to a field named `id`. The key type must be
///   `String`, `uuid::Uuid` or one of `i16`, `i32`, `i64`, `u16`, `u32`.
/// - `partition_key = "country"`: an optional partition-key field.
/// - `version = "version"`: an optional version field (same as marking it
///   `#[entity(version)]`).
///
/// Options may be split over several `#[entity(...)]` attributes.
///
/// # Field options: `#[entity(...)]`
///
/// - `key`: this field is the key.
/// - `partition_key`: this field is the partition key.
/// - `version`: this integer field (`u64`, `i64`, `u32`, `i32`, or
///   `Option<u64>`/`Option<i64>`) is the version the store maintains. It is
///   not listed in `Schema::fields`.
///
/// # Serde
///
/// Schema field names are the names serde emits: `#[serde(rename = "...")]`
/// and `#[serde(rename_all = "...")]` are honoured, and `#[serde(skip)]` /
/// `#[serde(skip_serializing)]` fields are left out of the schema.
/// `#[serde(flatten)]` and `#[serde(transparent)]` are rejected.
///
/// Each field's logical type comes from its Rust type: known scalar types
/// map to their kind (`Option<T>` makes it nullable) and any other serde
/// type is stored as nullable JSON.
///
/// # Errors
///
/// Generic structs, enums, tuple structs, unions, unknown options, missing
/// or duplicated key/version/partition-key declarations, and unsupported key
/// or version types are compile errors pointing at the offending item.
#[proc_macro_derive(Entity, attributes(entity))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
