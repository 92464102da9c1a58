//! The entity types the behaviours store.

use chrono::{DateTime, FixedOffset, Utc};
use polyrouter::Entity;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nested {
    pub label: String,
    pub tags: Vec<String>,
    pub depth: Option<Box<Nested>>,
}

/// One field of every logical type.
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "everything", key = "id")]
pub struct Everything {
    pub id: String,
    pub flag: bool,
    pub int: i64,
    pub small: i32,
    pub unsigned: u32,
    pub float: f64,
    pub text: String,
    pub bytes: Vec<u8>,
    pub at: DateTime<Utc>,
    pub at_zoned: DateTime<FixedOffset>,
    pub uuid: Uuid,
    pub json: serde_json::Value,
    pub nested: Nested,
    pub maybe_int: Option<i64>,
    pub maybe_text: Option<String>,
    pub maybe_at: Option<DateTime<Utc>>,
    pub maybe_float: Option<f64>,
    #[entity(version)]
    pub version: u64,
}

/// Rows for filters, sorting and paging.
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "item", key = "id")]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub group: i64,
    pub score: Option<f64>,
    pub tag: Option<String>,
    pub active: bool,
    #[entity(version)]
    pub version: u64,
}

/// String keys, for key edge cases.
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "note", key = "id")]
pub struct Note {
    pub id: String,
    pub body: String,
}

/// An entity with a default TTL (1s in the suite's config).
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "session", key = "id")]
pub struct Session {
    pub id: String,
    pub user: String,
}

/// Records with a partition key field: atomic batches within one
/// partition (`batch_atomic_partition`, Cosmos DB).
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "purchase", key = "id", partition_key = "customer")]
pub struct Purchase {
    pub id: String,
    pub customer: String,
    pub total: i64,
    #[entity(version)]
    pub version: u64,
}

pub fn purchase(id: &str, customer: &str, total: i64) -> Purchase {
    Purchase {
        id: id.into(),
        customer: customer.into(),
        total,
        version: 0,
    }
}

pub fn item(id: i64, name: &str, group: i64, score: Option<f64>, tag: Option<&str>) -> Item {
    Item {
        id,
        name: name.into(),
        group,
        score,
        tag: tag.map(str::to_string),
        active: id % 2 == 0,
        version: 0,
    }
}

pub fn note(id: &str, body: &str) -> Note {
    Note {
        id: id.into(),
        body: body.into(),
    }
}

/// A product whose images live in a blob store (`cascade_blobs`).
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "product", key = "id")]
pub struct Product {
    pub id: String,
    pub name: String,
    /// The key of its main image in the blob store.
    pub image_key: Option<String>,
    /// More image keys.
    pub gallery: Vec<String>,
}

/// A free-form JSON document, for the depth and number limits.
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "doc", key = "id")]
pub struct Doc {
    pub id: String,
    pub data: serde_json::Value,
}

pub fn doc(id: &str, data: serde_json::Value) -> Doc {
    Doc {
        id: id.into(),
        data,
    }
}
