//! The neutral query AST compiled to Cosmos DB SQL, values as `@pN`
//! parameters only.
//!
//! Filters keep polyrouter's two-valued semantics ([`crate::store::eval`]):
//! every leaf is wrapped so it is `true` or `false`, never `undefined`
//! (Cosmos' third value for a missing or null property), so `NOT` and `OR`
//! behave as in the memory store:
//!
//! | filter | Cosmos SQL |
//! | --- | --- |
//! | `f = v` (and `<`, `<=`, `>`, `>=`) | `IS_DEFINED(c["f"]) AND NOT IS_NULL(c["f"]) AND c["f"] = @p0` |
//! | `f <> v` | `NOT IS_DEFINED(c["f"]) OR IS_NULL(c["f"]) OR c["f"] != @p0` |
//! | `f in [a, b]` | `IS_DEFINED(c["f"]) AND NOT IS_NULL(c["f"]) AND c["f"] IN (@p0, @p1)` |
//! | `f in []` | `false` |
//! | `f starts with s` | `IS_STRING(c["f"]) AND STARTSWITH(c["f"], @p0)` |
//! | `f contains s` | `IS_STRING(c["f"]) AND CONTAINS(c["f"], @p0)` |
//! | `f is null` | `NOT IS_DEFINED(c["f"]) OR IS_NULL(c["f"])` |
//! | `and` / `or` / `not` | `a AND b` / `a OR b` / `NOT (a)`; empty `and` `true`, empty `or` `false` |
//!
//! Parentheses are added only where precedence (`NOT` > `AND` > `OR`)
//! needs them, e.g. `(NOT IS_DEFINED(c["f"]) OR IS_NULL(c["f"])) AND …`.
//!
//! Property names come from the entity schema (letters, digits, `_`), never
//! from values.

use serde_json::Value as Json;

use super::codec::{encode_value, stored_name};
use crate::Value;
use crate::entity::Schema;
use crate::query::{CmpOp, Direction, Filter, Order};

/// A compiled query: text and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CosmosSql {
    /// The query text.
    pub text: String,
    /// `(@name, value)` pairs.
    pub params: Vec<(String, Json)>,
}

struct Builder<'a> {
    schema: &'a Schema,
    params: Vec<(String, Json)>,
}

impl Builder<'_> {
    fn param(&mut self, v: &Value) -> Result<String, String> {
        let (json, _) = encode_value(v)?;
        let name = format!("@p{}", self.params.len());
        self.params.push((name.clone(), json));
        Ok(name)
    }

    fn prop(&self, field: &str) -> Result<String, String> {
        if self.schema.field(field).is_none() && field != self.schema.key {
            return Err(format!("unknown field `{field}`"));
        }
        Ok(format!("c[\"{}\"]", stored_name(field)))
    }

    /// The condition and how tightly it binds; parentheses only where
    /// precedence needs them (`NOT` > `AND` > `OR`).
    fn filter(&mut self, f: &Filter) -> Result<(String, Prec), String> {
        Ok(match f {
            Filter::Cmp { field, op, value } => {
                let p = self.prop(field)?;
                if value.is_null() {
                    // Mirrors eval: eq(null) is is_null; ne/gt/ge hold for
                    // every non-null value; lt/le never hold.
                    return Ok(match op {
                        CmpOp::Eq => (is_null(&p), Prec::Or),
                        CmpOp::Ne | CmpOp::Gt | CmpOp::Ge => (present(&p), Prec::And),
                        CmpOp::Lt | CmpOp::Le => ("false".into(), Prec::Atom),
                    });
                }
                let v = self.param(value)?;
                match op {
                    CmpOp::Ne => (format!("{} OR {p} != {v}", is_null(&p)), Prec::Or),
                    _ => (
                        format!("{} AND {p} {} {v}", present(&p), op.symbol()),
                        Prec::And,
                    ),
                }
            }
            Filter::In { field, values } => {
                let p = self.prop(field)?;
                if values.is_empty() {
                    return Ok(("false".into(), Prec::Atom));
                }
                let names = values
                    .iter()
                    .map(|v| self.param(v))
                    .collect::<Result<Vec<_>, _>>()?;
                (
                    format!("{} AND {p} IN ({})", present(&p), names.join(", ")),
                    Prec::And,
                )
            }
            Filter::Prefix { field, prefix } => {
                let p = self.prop(field)?;
                let v = self.param(&Value::String(prefix.clone()))?;
                (
                    format!("IS_STRING({p}) AND STARTSWITH({p}, {v})"),
                    Prec::And,
                )
            }
            Filter::Contains { field, needle } => {
                let p = self.prop(field)?;
                let v = self.param(&Value::String(needle.clone()))?;
                (format!("IS_STRING({p}) AND CONTAINS({p}, {v})"), Prec::And)
            }
            Filter::IsNull(field) => (is_null(&self.prop(field)?), Prec::Or),
            Filter::And(v) if v.is_empty() => ("true".into(), Prec::Atom),
            Filter::Or(v) if v.is_empty() => ("false".into(), Prec::Atom),
            Filter::And(v) => (self.join(v, " AND ", Prec::And)?, Prec::And),
            Filter::Or(v) => (self.join(v, " OR ", Prec::Or)?, Prec::Or),
            Filter::Not(x) => {
                let inner = self.filter(x)?;
                (format!("NOT {}", wrap(inner, Prec::Atom)), Prec::Atom)
            }
        })
    }

    fn join(&mut self, v: &[Filter], sep: &str, prec: Prec) -> Result<String, String> {
        let parts = v
            .iter()
            .map(|f| self.filter(f).map(|x| wrap(x, prec)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(parts.join(sep))
    }

    /// The whole condition of a `WHERE`: no tombstone, no outbox item, and
    /// the filter.
    fn live(&mut self, f: Option<&Filter>) -> Result<String, String> {
        let live = format!(
            "NOT IS_DEFINED(c[\"{}\"]) AND NOT IS_DEFINED(c[\"{}\"])",
            super::codec::DELETED,
            super::codec::OUTBOX
        );
        Ok(match f {
            Some(f) => format!("{live} AND {}", wrap(self.filter(f)?, Prec::And)),
            None => live,
        })
    }
}

/// How tightly an expression binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    Or,
    And,
    Atom,
}

/// The expression in parentheses if it binds less tightly than `need`.
/// (The emulator's parser takes exponential time in nesting depth, and the
/// service does not need more parentheses than precedence does.)
fn wrap((text, prec): (String, Prec), need: Prec) -> String {
    if prec < need {
        format!("({text})")
    } else {
        text
    }
}

fn present(p: &str) -> String {
    format!("IS_DEFINED({p}) AND NOT IS_NULL({p})")
}

fn is_null(p: &str) -> String {
    format!("NOT IS_DEFINED({p}) OR IS_NULL({p})")
}

/// `SELECT [TOP @p] * FROM c WHERE <no tombstone, no outbox item> [AND …] [ORDER BY c["f"] ASC|DESC]`.
///
/// Cosmos DB needs a composite index for an `ORDER BY` over two or more
/// properties, so the store orders on the server by the first sort key
/// only and finishes the order (ties, the key) itself; see
/// [`super::CosmosStore`]'s query. `top` is only set when that one sort key
/// is the whole order (no ties to finish).
pub(super) fn select(
    schema: &Schema,
    filter: Option<&Filter>,
    order: Option<&Order>,
    top: Option<usize>,
) -> Result<CosmosSql, String> {
    let mut b = Builder {
        schema,
        params: Vec::new(),
    };
    let mut text = String::from("SELECT ");
    if let Some(limit) = top {
        let n = b.param(&Value::I64(i64::try_from(limit).unwrap_or(i64::MAX)))?;
        text.push_str(&format!("TOP {n} "));
    }
    text.push_str("* FROM c WHERE ");
    text.push_str(&b.live(filter)?);
    if let Some(o) = order {
        let dir = match o.direction {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        };
        text.push_str(&format!(" ORDER BY {} {dir}", b.prop(&o.field)?));
    }
    Ok(CosmosSql {
        text,
        params: b.params,
    })
}

/// The condition a filter becomes, alone (for tests).
#[cfg(test)]
pub(super) fn condition(schema: &Schema, filter: &Filter) -> Result<CosmosSql, String> {
    let mut b = Builder {
        schema,
        params: Vec::new(),
    };
    let text = b.filter(filter)?.0;
    Ok(CosmosSql {
        text,
        params: b.params,
    })
}

/// `SELECT VALUE COUNT(1) FROM c WHERE <no tombstone, no outbox item> [AND …]`.
pub(super) fn count(schema: &Schema, filter: Option<&Filter>) -> Result<CosmosSql, String> {
    let mut b = Builder {
        schema,
        params: Vec::new(),
    };
    let mut text = String::from("SELECT VALUE COUNT(1) FROM c WHERE ");
    text.push_str(&b.live(filter)?);
    Ok(CosmosSql {
        text,
        params: b.params,
    })
}

/// The partition key value a filter pins (`pk = v` at the top level or in
/// a top-level `and`), if any: such a query runs in that partition only.
pub(super) fn pinned_partition<'f>(
    pk_field: &str,
    filter: Option<&'f Filter>,
) -> Option<&'f Value> {
    let pinned = |f: &'f Filter| match f {
        Filter::Cmp {
            field,
            op: CmpOp::Eq,
            value,
        } if field == pk_field && !value.is_null() => Some(value),
        _ => None,
    };
    match filter? {
        Filter::And(v) => v.iter().find_map(pinned),
        f => pinned(f),
    }
}
