//! The reference semantics of filters and ordering.
//!
//! The memory store evaluates queries with these functions, and the
//! behaviour suite checks every other store against them.
//!
//! ```
//! use polyrouter::{query::field, store::eval::matches, Key, Record, Value};
//! let mut r = Record::new(Key::from("a"));
//! r.set("n", Value::Null);
//! assert!(matches(&field("n").ne(1), &r));      // ne matches nulls
//! assert!(!matches(&field("n").lt(1), &r));     // comparisons with null are false
//! assert!(matches(&field("n").lt(1).not(), &r)); // two-valued logic: not(false) = true
//! ```

use std::cmp::Ordering;

use crate::query::{CmpOp, Direction, Filter, Order};
use crate::{Record, Value};

/// Whether `record` satisfies `filter` (two-valued logic; see [`Filter`]).
pub fn matches(filter: &Filter, record: &Record) -> bool {
    match filter {
        Filter::Cmp { field, op, value } => {
            let v = record.value(field);
            if value.is_null() {
                // `eq(null)` is `is_null`; `ne`, `gt`, `ge` hold for every
                // non-null value (null sorts first); `lt`, `le` never hold.
                return match op {
                    CmpOp::Eq => v.is_null(),
                    CmpOp::Ne | CmpOp::Gt | CmpOp::Ge => !v.is_null(),
                    CmpOp::Lt | CmpOp::Le => false,
                };
            }
            if v.is_null() {
                return *op == CmpOp::Ne;
            }
            let Some(o) = v.partial_cmp(value) else {
                return false;
            };
            op.holds(o)
        }
        Filter::In { field, values } => {
            let v = record.value(field);
            !v.is_null()
                && values
                    .iter()
                    .any(|x| v.partial_cmp(x) == Some(Ordering::Equal))
        }
        Filter::Prefix { field, prefix } => {
            matches!(record.value(field), Value::String(s) if s.starts_with(prefix.as_str()))
        }
        Filter::Contains { field, needle } => {
            matches!(record.value(field), Value::String(s) if s.contains(needle.as_str()))
        }
        Filter::IsNull(field) => record.value(field).is_null(),
        Filter::And(v) => v.iter().all(|f| matches(f, record)),
        Filter::Or(v) => v.iter().any(|f| matches(f, record)),
        Filter::Not(f) => !matches(f, record),
    }
}

/// Compares two records by a total order (nulls first ascending, last descending).
///
/// ```
/// use polyrouter::{query::{Direction, Order}, store::eval::compare, Key, Record};
/// let mut a = Record::new(Key::from("a")); a.set("n", 1.into());
/// let mut b = Record::new(Key::from("b")); b.set("n", 2.into());
/// let order = [Order { field: "n".into(), direction: Direction::Desc }];
/// assert_eq!(compare(&order, &a, &b), std::cmp::Ordering::Greater);
/// ```
pub fn compare(order: &[Order], a: &Record, b: &Record) -> Ordering {
    for o in order {
        let c = a
            .value(&o.field)
            .partial_cmp(b.value(&o.field))
            .unwrap_or(Ordering::Equal);
        let c = match o.direction {
            Direction::Asc => c,
            Direction::Desc => c.reverse(),
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    a.key.cmp(&b.key)
}
