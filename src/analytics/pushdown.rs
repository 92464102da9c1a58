//! SQL predicates as neutral [`Filter`]s, with SQL's three-valued logic kept.
//!
//! A `WHERE` clause keeps a row when its predicate is *true*; null and
//! false both drop it. polyrouter's filters are two-valued (`ne` and `not`
//! hold on a null field), so each predicate `p` is translated twice: into
//! the filter that holds exactly when `p` is true ([`when_true`]) and the
//! one that holds exactly when `p` is false (for `NOT p`). A predicate
//! either translates exactly or not at all: nothing is pushed that could
//! keep or drop a row differently from DataFusion.

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Like, Operator};
use datafusion::scalar::ScalarValue;

use crate::query::{CmpOp, Filter, field};
use crate::{FieldKind, Schema, Value};

use super::schema::Source;

/// How a predicate is pushed into a store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pushed {
    /// The store evaluates exactly this filter; DataFusion does not re-check.
    Exact(Filter),
    /// The store cannot evaluate it (or it does not translate).
    Unsupported,
}

/// Translates a predicate over `columns` of `schema` and checks it against
/// the store's filter capabilities.
pub(crate) fn push(
    schema: &'static Schema,
    columns: &[Source],
    caps: &crate::FilterCaps,
    expr: &Expr,
) -> Pushed {
    let cx = Cx { schema, columns };
    let Some(f) = cx.truth(expr, true, 0) else {
        return Pushed::Unsupported;
    };
    let Ok(f) = crate::query::normalize(&f, schema) else {
        return Pushed::Unsupported;
    };
    if caps.first_unsupported(&f).is_some() {
        return Pushed::Unsupported;
    }
    Pushed::Exact(f)
}

/// The keys `expr` pins the entity's key to, when it does exactly:
/// `key = literal`, `key IN (literals)` and `OR` of those (at most
/// `max` keys). A store without queries reads such a table by key.
pub(crate) fn key_set(
    schema: &'static Schema,
    expr: &Expr,
    max: usize,
) -> Option<std::collections::BTreeSet<crate::Key>> {
    key_set_at(schema, expr, max, 0)
}

fn key_set_at(
    schema: &'static Schema,
    expr: &Expr,
    max: usize,
    depth: usize,
) -> Option<std::collections::BTreeSet<crate::Key>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let kind = schema.field(schema.key).map(|f| f.ty.kind)?;
    let is_key = |e: &Expr| matches!(e, Expr::Column(c) if c.name == schema.key);
    let key = |e: &Expr| literal(e, kind).as_ref().and_then(crate::Key::from_value);
    let keys: std::collections::BTreeSet<crate::Key> = match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) if is_key(left) => [key(right)?].into(),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) if is_key(right) => [key(left)?].into(),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut l = key_set_at(schema, left, max, depth + 1)?;
            l.extend(key_set_at(schema, right, max, depth + 1)?);
            l
        }
        Expr::InList(l) if !l.negated && is_key(&l.expr) => {
            l.list.iter().map(key).collect::<Option<_>>()?
        }
        _ => return None,
    };
    (keys.len() <= max).then_some(keys)
}

/// The filter holding exactly when `expr` is true, if it translates
/// (capabilities not checked).
#[cfg(test)]
pub(crate) fn when_true(
    schema: &'static Schema,
    columns: &[Source],
    expr: &Expr,
) -> Option<Filter> {
    Cx { schema, columns }.truth(expr, true, 0)
}

struct Cx<'a> {
    schema: &'static Schema,
    columns: &'a [Source],
}

/// Deeper SQL than this is left to DataFusion (the neutral filter has its
/// own depth limit, [`crate::query::MAX_FILTER_DEPTH`]).
const MAX_DEPTH: usize = 32;

fn not_null(name: &str) -> Filter {
    field(name).is_not_null()
}

impl Cx<'_> {
    /// A column of this table that a filter may name (not the version, not JSON).
    fn column(&self, e: &Expr) -> Option<(&'static str, FieldKind)> {
        let Expr::Column(c) = e else { return None };
        let src = self.columns.iter().find(|s| s.name() == c.name)?;
        match src {
            Source::Field(n, k) if *k != FieldKind::Json && self.schema.field(n).is_some() => {
                Some((n, *k))
            }
            _ => None,
        }
    }

    /// Whether the field can hold null (the key cannot).
    fn nullable(&self, name: &str) -> bool {
        name != self.schema.key && self.schema.field(name).is_none_or(|f| f.ty.nullable)
    }

    /// `cond`, and-ed with "the field is not null" when the field may be null.
    fn guarded(&self, name: &str, cond: Filter) -> Filter {
        if self.nullable(name) {
            Filter::And(vec![not_null(name), cond])
        } else {
            cond
        }
    }

    /// The filter holding exactly when `e` evaluates to `want` (true or false).
    fn truth(&self, e: &Expr, want: bool, depth: usize) -> Option<Filter> {
        if depth > MAX_DEPTH {
            return None;
        }
        let d = depth + 1;
        match e {
            Expr::Not(inner) => self.truth(inner, !want, d),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let l = self.truth(left, want, d)?;
                    let r = self.truth(right, want, d)?;
                    // true: AND needs both, OR either; false: the other way round.
                    let all = (*op == Operator::And) == want;
                    Some(if all {
                        Filter::And(vec![l, r])
                    } else {
                        Filter::Or(vec![l, r])
                    })
                }
                _ => self.comparison(left, *op, right, want),
            },
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let (name, _) = self.column(inner)?;
                let is_null = matches!(e, Expr::IsNull(_)) == want;
                Some(if is_null {
                    field(name).is_null()
                } else {
                    not_null(name)
                })
            }
            Expr::InList(l) => {
                let (name, kind) = self.column(&l.expr)?;
                let values = l
                    .list
                    .iter()
                    .map(|x| literal(x, kind))
                    .collect::<Option<Vec<_>>>()?;
                let is_in = Filter::In {
                    field: name.into(),
                    values,
                };
                Some(if l.negated == want {
                    self.guarded(name, is_in.not())
                } else {
                    is_in
                })
            }
            Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }) => {
                let (name, kind) = self.column(expr)?;
                let lo = literal(low, kind)?;
                let hi = literal(high, kind)?;
                let inside = Filter::And(vec![field(name).ge(lo), field(name).le(hi)]);
                Some(if *negated == want {
                    self.guarded(name, inside.not())
                } else {
                    inside
                })
            }
            Expr::Like(like) => {
                let (name, m) = self.like(like)?;
                Some(if like.negated == want {
                    self.guarded(name, m.not())
                } else {
                    m
                })
            }
            Expr::Column(_) => {
                let (name, kind) = self.column(e)?;
                (kind == FieldKind::Bool).then(|| field(name).eq(want))
            }
            _ => None,
        }
    }

    /// `column op literal` (either way round).
    fn comparison(&self, left: &Expr, op: Operator, right: &Expr, want: bool) -> Option<Filter> {
        let (col, lit, op) = match (self.column(left), self.column(right)) {
            (Some(c), None) => (c, right, op),
            (None, Some(c)) => (c, left, op.swap()?),
            _ => return None,
        };
        let (name, kind) = col;
        let value = literal(lit, kind)?;
        let op = match op {
            Operator::Eq => CmpOp::Eq,
            Operator::NotEq => CmpOp::Ne,
            Operator::Lt => CmpOp::Lt,
            Operator::LtEq => CmpOp::Le,
            Operator::Gt => CmpOp::Gt,
            Operator::GtEq => CmpOp::Ge,
            _ => return None,
        };
        // UUIDs are text to SQL but values to the store: only equality
        // agrees on both sides (and the literal must be canonical).
        if kind == FieldKind::Uuid && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            return None;
        }
        let op = if want { op } else { negate(op) };
        let cmp = Filter::Cmp {
            field: name.into(),
            op,
            value,
        };
        // polyrouter's `ne` holds on a null field; SQL's `<>` is null there.
        Some(if op == CmpOp::Ne {
            self.guarded(name, cmp)
        } else {
            cmp
        })
    }

    /// `column LIKE 'abc%'` (prefix) or `'%abc%'` (contains), case-sensitive,
    /// no other wildcard, no escape character.
    fn like(&self, like: &Like) -> Option<(&'static str, Filter)> {
        let Like {
            expr,
            pattern,
            escape_char,
            case_insensitive,
            ..
        } = like;
        if *case_insensitive || escape_char.is_some() {
            return None;
        }
        let (name, kind) = self.column(expr)?;
        if kind != FieldKind::String {
            return None;
        }
        let Value::String(p) = literal(pattern, FieldKind::String)? else {
            return None;
        };
        let literal_text = |s: &str| !s.contains(['%', '_', '\\']);
        if let Some(inner) = p.strip_prefix('%').and_then(|s| s.strip_suffix('%'))
            && literal_text(inner)
        {
            return Some((name, field(name).contains(inner)));
        }
        if let Some(prefix) = p.strip_suffix('%')
            && literal_text(prefix)
        {
            return Some((name, field(name).prefix(prefix)));
        }
        if literal_text(&p) {
            return Some((name, field(name).eq(p)));
        }
        None
    }
}

/// The operator holding exactly when `op` is false (on non-null operands).
fn negate(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Eq => CmpOp::Ne,
        CmpOp::Ne => CmpOp::Eq,
        CmpOp::Lt => CmpOp::Ge,
        CmpOp::Le => CmpOp::Gt,
        CmpOp::Gt => CmpOp::Le,
        CmpOp::Ge => CmpOp::Lt,
    }
}

/// A non-null literal as a value of `kind`; `None` when it does not fit
/// exactly (DataFusion then evaluates the predicate).
fn literal(e: &Expr, kind: FieldKind) -> Option<Value> {
    let Expr::Literal(s, _) = e else { return None };
    let v = match s {
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Int8(Some(i)) => Value::I64(i64::from(*i)),
        ScalarValue::Int16(Some(i)) => Value::I64(i64::from(*i)),
        ScalarValue::Int32(Some(i)) => Value::I64(i64::from(*i)),
        ScalarValue::Int64(Some(i)) => Value::I64(*i),
        ScalarValue::UInt8(Some(i)) => Value::I64(i64::from(*i)),
        ScalarValue::UInt16(Some(i)) => Value::I64(i64::from(*i)),
        ScalarValue::UInt32(Some(i)) => Value::I64(i64::from(*i)),
        ScalarValue::UInt64(Some(i)) => Value::I64(i64::try_from(*i).ok()?),
        ScalarValue::Float64(Some(f)) if !f.is_nan() => Value::F64(*f),
        ScalarValue::Float32(Some(f)) if !f.is_nan() => Value::F64(f64::from(*f)),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::String(s.clone()),
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b)) => Value::Bytes(b.clone()),
        ScalarValue::TimestampMicrosecond(Some(t), _) => {
            Value::Timestamp(chrono::DateTime::from_timestamp_micros(*t)?)
        }
        ScalarValue::TimestampMillisecond(Some(t), _) => {
            Value::Timestamp(chrono::DateTime::from_timestamp_millis(*t)?)
        }
        ScalarValue::TimestampSecond(Some(t), _) => {
            Value::Timestamp(chrono::DateTime::from_timestamp(*t, 0)?)
        }
        ScalarValue::TimestampNanosecond(Some(t), _) if t % 1000 == 0 => {
            Value::Timestamp(chrono::DateTime::from_timestamp_micros(t / 1000)?)
        }
        _ => return None,
    };
    // The literal must be of the column's own type: a cast on either side
    // would compare differently in the store.
    match (kind, &v) {
        (FieldKind::Bool, Value::Bool(_))
        | (FieldKind::Int, Value::I64(_))
        | (FieldKind::Float, Value::F64(_))
        | (FieldKind::String, Value::String(_))
        | (FieldKind::Bytes, Value::Bytes(_))
        | (FieldKind::Timestamp, Value::Timestamp(_)) => Some(v),
        (FieldKind::Uuid, Value::String(s)) => {
            let u = uuid::Uuid::parse_str(s).ok()?;
            (u.to_string() == *s).then_some(Value::Uuid(u))
        }
        _ => None,
    }
}
