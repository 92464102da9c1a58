//! Validates a filter against an entity schema and coerces operand types.

use super::{CmpOp, Filter, MAX_FILTER_DEPTH};
use crate::Value;
use crate::entity::{FieldDef, FieldKind, Schema};

/// Checks the filter nests at most [`MAX_FILTER_DEPTH`] levels, every
/// field exists and every operand fits the field's type, returning the
/// filter with operands converted (e.g. an RFC 3339 string compared with a
/// timestamp field becomes a timestamp).
pub(crate) fn normalize(filter: &Filter, schema: &Schema) -> Result<Filter, String> {
    check_depth(filter)?;
    normalize_node(filter, schema)
}

/// Refuses a filter nested deeper than [`MAX_FILTER_DEPTH`], walking it
/// without recursion.
fn check_depth(filter: &Filter) -> Result<(), String> {
    let mut stack = vec![(filter, 1usize)];
    while let Some((f, depth)) = stack.pop() {
        if depth > MAX_FILTER_DEPTH {
            return Err(format!(
                "the filter nests deeper than {MAX_FILTER_DEPTH} levels of and/or/not; flatten it (e.g. `and` over a list, `in` for many values of one field)"
            ));
        }
        match f {
            Filter::And(v) | Filter::Or(v) => stack.extend(v.iter().map(|c| (c, depth + 1))),
            Filter::Not(c) => stack.push((c, depth + 1)),
            _ => {}
        }
    }
    Ok(())
}

/// Frees a filter without recursion: a filter nested deeper than any
/// stack can hold (dropping one recurses once per level) is taken apart
/// node by node.
pub(crate) fn dismantle(filter: Filter) {
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::And(v) | Filter::Or(v) => stack.extend(v),
            Filter::Not(c) => stack.push(*c),
            _ => {}
        }
    }
}

fn normalize_node(filter: &Filter, schema: &Schema) -> Result<Filter, String> {
    Ok(match filter {
        Filter::Cmp { field, op, value } => {
            let def = lookup(schema, field)?;
            if value.is_null() {
                return match op {
                    CmpOp::Eq => Ok(Filter::IsNull(field.clone())),
                    CmpOp::Ne => Ok(Filter::IsNull(field.clone()).not()),
                    _ => Err(format!(
                        "`{field} {} null` is never true; use is_null()",
                        op.symbol()
                    )),
                };
            }
            if def.ty.kind == FieldKind::Json {
                return Err(format!(
                    "json field `{field}` can only be tested with is_null"
                ));
            }
            Filter::Cmp {
                field: field.clone(),
                op: *op,
                value: coerce(def, value)?,
            }
        }
        Filter::In { field, values } => {
            let def = lookup(schema, field)?;
            if def.ty.kind == FieldKind::Json {
                return Err(format!(
                    "json field `{field}` can only be tested with is_null"
                ));
            }
            let values = values
                .iter()
                .map(|v| {
                    if v.is_null() {
                        Err(format!(
                            "`{field} in [...]` cannot hold null; or it with is_null()"
                        ))
                    } else {
                        coerce(def, v)
                    }
                })
                .collect::<Result<_, _>>()?;
            Filter::In {
                field: field.clone(),
                values,
            }
        }
        Filter::Prefix { field, .. } | Filter::Contains { field, .. } => {
            let def = lookup(schema, field)?;
            if def.ty.kind != FieldKind::String {
                return Err(format!(
                    "{} needs a string field; `{field}` is {}",
                    filter.capability(),
                    def.ty.kind.name()
                ));
            }
            filter.clone()
        }
        Filter::IsNull(field) => {
            lookup(schema, field)?;
            filter.clone()
        }
        Filter::And(v) => Filter::And(
            v.iter()
                .map(|f| normalize_node(f, schema))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Or(v) => Filter::Or(
            v.iter()
                .map(|f| normalize_node(f, schema))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Not(f) => Filter::Not(Box::new(normalize_node(f, schema)?)),
    })
}

pub(crate) fn lookup<'s>(schema: &'s Schema, field: &str) -> Result<&'s FieldDef, String> {
    schema.field(field).ok_or_else(|| {
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
        format!(
            "unknown field `{field}`; the entity has: {}",
            names.join(", ")
        )
    })
}

/// Converts `value` to the field's logical type, or explains why it can't.
pub(crate) fn coerce(def: &FieldDef, value: &Value) -> Result<Value, String> {
    let bad = || {
        Err(format!(
            "field `{}` is {}, but the operand is {} ({value})",
            def.name,
            def.ty.kind.name(),
            value.type_name()
        ))
    };
    match (def.ty.kind, value) {
        (FieldKind::Bool, Value::Bool(_))
        | (FieldKind::Int, Value::I64(_))
        | (FieldKind::String, Value::String(_))
        | (FieldKind::Bytes, Value::Bytes(_))
        | (FieldKind::Timestamp, Value::Timestamp(_))
        | (FieldKind::Uuid, Value::Uuid(_)) => Ok(value.clone()),
        (FieldKind::Float, Value::F64(f)) if f.is_nan() => Err("NaN is not a valid operand".into()),
        (FieldKind::Float, Value::F64(f)) => Ok(Value::F64(if *f == 0.0 { 0.0 } else { *f })),
        (FieldKind::Float, Value::I64(i)) => Ok(Value::F64(*i as f64)),
        (FieldKind::Timestamp, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(Value::timestamp)
            .map_err(|e| {
                format!(
                    "field `{}`: {s:?} is not an RFC 3339 timestamp: {e}",
                    def.name
                )
            }),
        (FieldKind::Uuid, Value::String(s)) => uuid::Uuid::parse_str(s)
            .map(Value::Uuid)
            .map_err(|e| format!("field `{}`: {s:?} is not a UUID: {e}", def.name)),
        _ => bad(),
    }
}
