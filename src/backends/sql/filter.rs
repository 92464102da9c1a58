//! Filters as SQL expressions that are never `NULL`, so `NOT` and `OR`
//! follow the reference two-valued logic of [`crate::store::eval`].

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use super::dialect::KeyList;
use super::param::{Param, value_param};
use super::table::TableSql;
use crate::Value;
use crate::entity::FieldKind;
use crate::query::{CmpOp, Filter};

impl TableSql {
    /// Renders a filter as an expression that is always true or false, never
    /// NULL; appends its parameters (`?` markers, numbered later).
    pub fn filter<'a>(&self, f: &'a Filter, sql: &mut String, params: &mut Vec<Param<'a>>) {
        let d = &*self.dialect;
        match f {
            Filter::Cmp { field, op, value } => self.cmp(field, *op, value, sql, params),
            Filter::In { field, values } => {
                let Some(c) = self.column(field) else {
                    sql.push_str(d.literal(false)); // null never equals a value
                    return;
                };
                let candidates: Vec<Param<'_>> = values
                    .iter()
                    .filter(|v| {
                        !v.is_null()
                            && v.rank() == kind_rank(c.kind)
                            && !sub_micro(v)
                            && !self.unstorable_text(v)
                            && !self.unstorable_float(v)
                    })
                    .filter_map(|v| operand(c.kind, v))
                    .collect();
                if candidates.is_empty() {
                    sql.push_str(d.literal(false));
                    return;
                }
                let qc = self.quote(c.name);
                if let Some((eq, times)) = d.exact_cmp(c, &qc, CmpOp::Eq) {
                    let alts: Vec<&str> = vec![eq.as_str(); candidates.len()];
                    let _ = write!(sql, "({})", alts.join(" OR "));
                    for p in candidates {
                        params.extend(std::iter::repeat_n(p, times));
                    }
                    return;
                }
                if d.key_list() == KeyList::Array {
                    // A dialect that binds key lists as one array binds `in`
                    // lists so too: one parameter, however long the list.
                    let _ = write!(sql, "({qc} IS NOT NULL AND {qc} = ANY(?))");
                    params.push(Param::Array(c.kind, candidates));
                    return;
                }
                let _ = write!(
                    sql,
                    "({qc} IS NOT NULL AND {qc} IN ({}))",
                    vec![d.operand(c.kind); candidates.len()].join(", ")
                );
                params.extend(candidates);
            }
            Filter::Prefix { field, prefix: s } | Filter::Contains { field, needle: s } => {
                let Some(c) = self.column(field).filter(|c| c.kind == FieldKind::String) else {
                    sql.push_str(d.literal(false));
                    return;
                };
                let qc = self.quote(c.name);
                if s.is_empty() {
                    // Every string starts with and contains "".
                    let _ = write!(sql, "({qc} IS NOT NULL)");
                } else if !d.text_holds_nul() && s.contains('\0') {
                    // No stored text holds NUL.
                    sql.push_str(d.literal(false));
                } else if matches!(f, Filter::Prefix { .. }) {
                    d.prefix(&qc, s, sql, params);
                } else {
                    d.contains(&qc, s, sql, params);
                }
            }
            Filter::IsNull(field) => match self.column(field) {
                Some(c) => {
                    let _ = write!(sql, "({} IS NULL)", self.quote(c.name));
                }
                None => sql.push_str(d.literal(true)),
            },
            Filter::And(v) | Filter::Or(v) if v.is_empty() => {
                sql.push_str(d.literal(matches!(f, Filter::And(_))));
            }
            Filter::And(v) | Filter::Or(v) => {
                let sep = if matches!(f, Filter::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                sql.push('(');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(sep);
                    }
                    self.filter(x, sql, params);
                }
                sql.push(')');
            }
            Filter::Not(x) => {
                sql.push_str("(NOT ");
                self.filter(x, sql, params);
                sql.push(')');
            }
        }
    }

    /// An infinite float operand where stored floats cannot be infinite.
    fn unstorable_float(&self, v: &Value) -> bool {
        !self.dialect.infinite_floats() && matches!(v, Value::F64(f) if f.is_infinite())
    }

    /// A string operand with NUL where stored text cannot hold NUL.
    fn unstorable_text(&self, v: &Value) -> bool {
        !self.dialect.text_holds_nul() && matches!(v, Value::String(s) if s.contains('\0'))
    }

    fn cmp<'a>(
        &self,
        field: &str,
        op: CmpOp,
        value: &'a Value,
        sql: &mut String,
        params: &mut Vec<Param<'a>>,
    ) {
        let d = &*self.dialect;
        let lit = |sql: &mut String, b: bool| sql.push_str(d.literal(b));
        // A field the table lacks is null in every row.
        let Some(c) = self.column(field) else {
            let holds = if value.is_null() {
                op == CmpOp::Eq
            } else {
                op == CmpOp::Ne
            };
            return lit(sql, holds);
        };
        let qc = self.quote(c.name);
        let not_null = |sql: &mut String| {
            let _ = write!(sql, "({qc} IS NOT NULL)");
        };
        if value.is_null() {
            // `eq(null)` is `is_null`; other rows rank above null.
            match op {
                CmpOp::Eq => {
                    let _ = write!(sql, "({qc} IS NULL)");
                }
                CmpOp::Ne | CmpOp::Gt | CmpOp::Ge => not_null(sql),
                _ => lit(sql, false),
            }
            return;
        }
        // Every non-null row compares with the operand the same way.
        let uniform = |sql: &mut String, every: Ordering| {
            if op == CmpOp::Ne {
                lit(sql, true);
            } else if op.holds(every) {
                not_null(sql);
            } else {
                lit(sql, false);
            }
        };
        let (kr, vr) = (kind_rank(c.kind), value.rank());
        if kr != vr {
            // Values of different types order by type rank.
            return uniform(sql, kr.cmp(&vr));
        }
        // An operand no stored value can equal, between two stored values:
        // a timestamp with a sub-microsecond part (stored ones are whole
        // microseconds), a string with NUL where stored text holds none
        // (compare with its part before the first NUL), an integer column
        // against a fractional float.
        let between = match value {
            Value::Timestamp(t) if sub_micro(value) => {
                Some(Param::Timestamp(super::param::floor_micros(t)))
            }
            Value::String(s) if self.unstorable_text(value) => {
                Some(Param::Text(Cow::Borrowed(&s[..s.find('\0').unwrap_or(0)])))
            }
            // Beyond every stored float.
            Value::F64(f) if c.kind == FieldKind::Float && self.unstorable_float(value) => {
                let every = if *f > 0.0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                return uniform(sql, every);
            }
            Value::F64(f) if c.kind == FieldKind::Int => match int_floor(*f) {
                Ok(_) => None,
                Err(Bound::Between(fl)) => Some(Param::Int(fl)),
                Err(Bound::Below) => return uniform(sql, Ordering::Greater),
                Err(Bound::Above) => return uniform(sql, Ordering::Less),
            },
            _ => None,
        };
        let (op, param) = match between {
            Some(floor) => match op {
                CmpOp::Eq => return lit(sql, false),
                CmpOp::Ne => return lit(sql, true),
                CmpOp::Lt | CmpOp::Le => (CmpOp::Le, floor),
                CmpOp::Gt | CmpOp::Ge => (CmpOp::Gt, floor),
            },
            None => match operand(c.kind, value) {
                Some(p) => (op, p),
                None => return lit(sql, false),
            },
        };
        if let Some((expr, times)) = d.exact_cmp(c, &qc, op) {
            sql.push_str(&expr);
            params.extend(std::iter::repeat_n(param, times));
            return;
        }
        if op == CmpOp::Ne {
            let _ = write!(sql, "({qc} IS NULL OR {qc} <> {})", d.operand(c.kind));
        } else if op == CmpOp::Eq {
            let _ = write!(sql, "({qc} IS NOT NULL AND {qc} = {})", d.operand(c.kind));
        } else {
            let _ = write!(
                sql,
                "({qc} IS NOT NULL AND {} {} {})",
                d.ordered(c, &qc),
                op.symbol(),
                d.ordered_operand(c.kind)
            );
        }
        params.push(param);
    }
}

/// Where a float operand falls among the integers.
enum Bound {
    /// Below every `i64`.
    Below,
    /// Above every `i64` (or NaN, which the reference orders above).
    Above,
    /// Strictly between this integer and the next.
    Between(i64),
}

/// The float as an exact integer, or where it falls.
fn int_floor(f: f64) -> Result<i64, Bound> {
    if f.is_nan() || f >= 9.223_372_036_854_776e18 {
        return Err(Bound::Above);
    }
    if f < -9.223_372_036_854_776e18 {
        return Err(Bound::Below);
    }
    let fl = f.floor();
    if fl == f {
        Ok(f as i64)
    } else {
        Err(Bound::Between(fl as i64))
    }
}

/// A same-rank operand bound as the column's type.
fn operand(kind: FieldKind, v: &Value) -> Option<Param<'_>> {
    Some(match (kind, v) {
        (FieldKind::Int, Value::F64(f)) => Param::Int(int_floor(*f).ok()?),
        (FieldKind::Float, Value::I64(i)) => Param::Float(*i as f64),
        _ => value_param(v),
    })
}

/// A timestamp with a sub-microsecond part, which no stored value equals.
fn sub_micro(v: &Value) -> bool {
    matches!(v, Value::Timestamp(t) if t.timestamp_subsec_nanos() % 1000 != 0)
}

/// The reference order's type rank of the values a column kind holds.
fn kind_rank(k: FieldKind) -> u8 {
    match k {
        FieldKind::Bool => 1,
        FieldKind::Int | FieldKind::Float => 2,
        FieldKind::String => 3,
        FieldKind::Bytes => 4,
        FieldKind::Timestamp => 5,
        FieldKind::Uuid => 6,
        FieldKind::Json => 7,
    }
}
