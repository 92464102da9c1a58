//! Entity schemas as Arrow schemas, and store records as Arrow record batches.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema as ArrowSchema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::{FieldKind, Record, Schema, Value};

/// One column of an entity table: where its values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A field of the record (the key field falls back to the record's key).
    Field(&'static str, FieldKind),
    /// The record's version (the schema's version field).
    Version(&'static str),
}

impl Source {
    /// The column name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Source::Field(n, _) | Source::Version(n) => n,
        }
    }

    /// The field's logical kind (a version is an integer).
    pub(crate) fn kind(&self) -> FieldKind {
        match self {
            Source::Field(_, k) => *k,
            Source::Version(_) => FieldKind::Int,
        }
    }
}

/// The Arrow type of a logical field kind.
///
/// UUIDs are their canonical lowercase hyphenated text, JSON its compact
/// text; timestamps are microseconds in UTC, as every store keeps them.
pub(crate) fn arrow_type(kind: FieldKind) -> DataType {
    match kind {
        FieldKind::Bool => DataType::Boolean,
        FieldKind::Int => DataType::Int64,
        FieldKind::Float => DataType::Float64,
        FieldKind::String | FieldKind::Uuid | FieldKind::Json => DataType::Utf8,
        FieldKind::Bytes => DataType::Binary,
        FieldKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// The columns of an entity's table, in schema order, then its version.
pub(crate) fn columns(schema: &'static Schema) -> Vec<Source> {
    let mut out: Vec<Source> = schema
        .fields
        .iter()
        .map(|f| Source::Field(f.name, f.ty.kind))
        .collect();
    if let Some(v) = schema.version {
        out.push(Source::Version(v));
    }
    out
}

/// The Arrow schema of an entity's table; nullability kept (the key and
/// the version are never null).
pub(crate) fn arrow_schema(schema: &'static Schema) -> SchemaRef {
    let fields: Vec<Field> = columns(schema)
        .iter()
        .map(|c| {
            let nullable = match c {
                Source::Version(_) => false,
                Source::Field(n, _) if *n == schema.key => false,
                Source::Field(n, _) => schema.field(n).is_none_or(|f| f.ty.nullable),
            };
            Field::new(c.name(), arrow_type(c.kind()), nullable)
        })
        .collect();
    Arc::new(ArrowSchema::new(fields))
}

/// The value of a column in a record (`Null` when absent).
pub(crate) fn value_of(schema: &Schema, record: &Record, column: &Source) -> Value {
    match column {
        Source::Version(_) => Value::I64(i64::try_from(record.version).unwrap_or(i64::MAX)),
        Source::Field(n, _) => match record.get(n) {
            Some(v) => v.clone(),
            None if *n == schema.key => record.key.to_value(),
            None => Value::Null,
        },
    }
}

/// Builds one record batch of `columns` (with `schema`, already projected)
/// from store records.
///
/// A value that does not fit its column (a store handing back another
/// type) is an error naming the column, never a silent null.
pub(crate) fn to_batch(
    entity: &Schema,
    columns: &[Source],
    schema: SchemaRef,
    records: &[Record],
) -> Result<RecordBatch, String> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for c in columns {
        let values = records.iter().map(|r| value_of(entity, r, c));
        arrays.push(build(c, values)?);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(records.len()));
    RecordBatch::try_new_with_options(schema, arrays, &options).map_err(|e| e.to_string())
}

fn mismatch(c: &Source, v: &Value) -> String {
    format!(
        "column `{}` is {}, but the store returned {} ({v})",
        c.name(),
        c.kind().name(),
        v.type_name()
    )
}

fn build(c: &Source, values: impl Iterator<Item = Value>) -> Result<ArrayRef, String> {
    macro_rules! fill {
        ($builder:expr, $($pat:pat => $val:expr),*) => {{
            let mut b = $builder;
            for v in values {
                match v {
                    Value::Null => b.append_null(),
                    $($pat => b.append_value($val),)*
                    other => return Err(mismatch(c, &other)),
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match c.kind() {
        FieldKind::Bool => fill!(BooleanBuilder::new(), Value::Bool(x) => x),
        FieldKind::Int => fill!(Int64Builder::new(), Value::I64(x) => x),
        FieldKind::Float => {
            fill!(Float64Builder::new(), Value::F64(x) => x, Value::I64(x) => x as f64)
        }
        FieldKind::String => fill!(StringBuilder::new(), Value::String(x) => x),
        FieldKind::Uuid => {
            fill!(StringBuilder::new(), Value::Uuid(x) => x.to_string(), Value::String(x) => x)
        }
        FieldKind::Json => fill!(StringBuilder::new(),
            Value::Json(x) => x.to_string(),
            Value::String(x) => serde_json::Value::String(x).to_string(),
            Value::I64(x) => x.to_string(),
            Value::F64(x) => serde_json::json!(x).to_string(),
            Value::Bool(x) => x.to_string()),
        FieldKind::Bytes => fill!(BinaryBuilder::new(), Value::Bytes(x) => x),
        FieldKind::Timestamp => {
            let b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            fill!(b, Value::Timestamp(x) => x.timestamp_micros())
        }
    })
}
