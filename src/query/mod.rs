//! The backend-neutral query language.
//!
//! ```
//! use polyrouter::query::{field, Query};
//! let q = Query::new()
//!     .filter(field("country").eq("SE").and(field("age").ge(18)))
//!     .order_by("created_at")
//!     .order_by_desc("score")
//!     .limit(50);
//! assert_eq!(q.limit, Some(50));
//! ```

use std::fmt;

use crate::Value;

/// A comparison operator.
///
/// ```
/// assert_eq!(polyrouter::query::CmpOp::Lt.symbol(), "<");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `<>` (null is never equal to a value, so `ne` matches nulls too)
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The SQL-like symbol.
    ///
    /// ```
    /// assert_eq!(polyrouter::query::CmpOp::Ne.symbol(), "<>");
    /// ```
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether the operator holds for `field.cmp(operand)`.
    ///
    /// ```
    /// use std::cmp::Ordering;
    /// assert!(polyrouter::query::CmpOp::Le.holds(Ordering::Equal));
    /// assert!(!polyrouter::query::CmpOp::Gt.holds(Ordering::Less));
    /// ```
    pub fn holds(self, o: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => o == Equal,
            CmpOp::Ne => o != Equal,
            CmpOp::Lt => o == Less,
            CmpOp::Le => o != Greater,
            CmpOp::Gt => o == Greater,
            CmpOp::Ge => o != Less,
        }
    }

    /// The name used in capability checks, e.g. `eq`.
    ///
    /// ```
    /// assert_eq!(polyrouter::query::CmpOp::Ge.name(), "ge");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// A filter over an entity's fields.
///
/// Semantics (the memory store is the reference): comparisons with a null
/// field are false, except `ne`, which is true when the field is null and
/// the operand is not; `eq(Null)` is the same as [`Filter::IsNull`];
/// `prefix` and `contains` are case-sensitive and match strings only,
/// treating `%` and `_` literally.
///
/// ```
/// use polyrouter::query::{field, Filter};
/// let f = field("name").prefix("A%").or(field("name").is_null());
/// assert!(matches!(f, Filter::Or(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `field op value`.
    Cmp {
        /// Field name.
        field: String,
        /// Operator.
        op: CmpOp,
        /// Operand.
        value: Value,
    },
    /// `field IN (values)`; an empty list matches nothing.
    In {
        /// Field name.
        field: String,
        /// Candidates.
        values: Vec<Value>,
    },
    /// String field starts with the prefix.
    Prefix {
        /// Field name.
        field: String,
        /// Prefix, matched literally.
        prefix: String,
    },
    /// String field contains the substring.
    Contains {
        /// Field name.
        field: String,
        /// Substring, matched literally.
        needle: String,
    },
    /// Field is null.
    IsNull(String),
    /// All must hold (empty: true).
    And(Vec<Filter>),
    /// Any must hold (empty: false).
    Or(Vec<Filter>),
    /// Negation.
    Not(Box<Filter>),
}

impl Filter {
    /// `self AND other`, flattening nested ands.
    ///
    /// ```
    /// use polyrouter::query::field;
    /// let f = field("a").eq(1).and(field("b").eq(2)).and(field("c").eq(3));
    /// assert!(matches!(f, polyrouter::query::Filter::And(v) if v.len() == 3));
    /// ```
    pub fn and(self, other: Filter) -> Filter {
        match self {
            Filter::And(mut v) => {
                v.push(other);
                Filter::And(v)
            }
            f => Filter::And(vec![f, other]),
        }
    }

    /// `self OR other`, flattening nested ors.
    ///
    /// ```
    /// use polyrouter::query::field;
    /// let f = field("a").eq(1).or(field("b").eq(2));
    /// assert!(matches!(f, polyrouter::query::Filter::Or(v) if v.len() == 2));
    /// ```
    pub fn or(self, other: Filter) -> Filter {
        match self {
            Filter::Or(mut v) => {
                v.push(other);
                Filter::Or(v)
            }
            f => Filter::Or(vec![f, other]),
        }
    }

    /// `NOT self`.
    ///
    /// ```
    /// use polyrouter::query::field;
    /// assert!(matches!(field("a").is_null().not(), polyrouter::query::Filter::Not(_)));
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// Calls `f` on every leaf filter (not on and/or/not nodes).
    ///
    /// ```
    /// use polyrouter::query::field;
    /// let mut n = 0;
    /// field("a").eq(1).or(field("b").eq(2).not()).visit(&mut |_| n += 1);
    /// assert_eq!(n, 2);
    /// ```
    pub fn visit(&self, f: &mut dyn FnMut(&Filter)) {
        match self {
            Filter::And(v) | Filter::Or(v) => v.iter().for_each(|x| x.visit(f)),
            Filter::Not(x) => x.visit(f),
            leaf => f(leaf),
        }
    }

    /// The capability name of this node, e.g. `filter prefix`.
    ///
    /// ```
    /// use polyrouter::query::field;
    /// assert_eq!(field("a").prefix("x").capability(), "filter prefix");
    /// ```
    pub fn capability(&self) -> String {
        match self {
            Filter::Cmp { op, .. } => format!("filter {}", op.name()),
            Filter::In { .. } => "filter in".into(),
            Filter::Prefix { .. } => "filter prefix".into(),
            Filter::Contains { .. } => "filter contains".into(),
            Filter::IsNull(_) => "filter is_null".into(),
            Filter::And(_) => "filter and".into(),
            Filter::Or(_) => "filter or".into(),
            Filter::Not(_) => "filter not".into(),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, v: &[Filter], sep: &str| {
            f.write_str("(")?;
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{x}")?;
            }
            f.write_str(")")
        };
        match self {
            Filter::Cmp { field, op, value } => write!(f, "{field} {} {value}", op.symbol()),
            Filter::In { field, values } => {
                write!(f, "{field} in [")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Filter::Prefix { field, prefix } => write!(f, "{field} starts with {prefix:?}"),
            Filter::Contains { field, needle } => write!(f, "{field} contains {needle:?}"),
            Filter::IsNull(field) => write!(f, "{field} is null"),
            Filter::And(v) => join(f, v, " and "),
            Filter::Or(v) => join(f, v, " or "),
            Filter::Not(x) => write!(f, "not {x}"),
        }
    }
}

/// Starts a filter on a field: `field("age").ge(18)`.
///
/// ```
/// let f = polyrouter::query::field("age").ge(18);
/// assert_eq!(f.to_string(), "age >= 18");
/// ```
pub fn field(name: impl Into<String>) -> FieldRef {
    FieldRef(name.into())
}

/// A field being filtered on; see [`field`].
///
/// ```
/// let f = polyrouter::query::field("tag").is_in(["a", "b"]);
/// assert_eq!(f.to_string(), "tag in [\"a\", \"b\"]");
/// ```
#[derive(Debug, Clone)]
pub struct FieldRef(String);

macro_rules! cmp_methods {
    ($($name:ident => $op:ident),*) => {$(
        #[doc = concat!("`field ", stringify!($name), " value`.")]
        ///
        /// ```
        /// let _ = polyrouter::query::field("n").eq(1);
        /// ```
        pub fn $name(self, value: impl Into<Value>) -> Filter {
            Filter::Cmp { field: self.0, op: CmpOp::$op, value: value.into() }
        }
    )*};
}

impl FieldRef {
    cmp_methods!(eq => Eq, ne => Ne, lt => Lt, le => Le, gt => Gt, ge => Ge);

    /// `field IN (values)`.
    ///
    /// ```
    /// let _ = polyrouter::query::field("n").is_in([1, 2, 3]);
    /// ```
    pub fn is_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Filter {
        Filter::In {
            field: self.0,
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// String field starts with `prefix` (literal, case-sensitive).
    ///
    /// ```
    /// let _ = polyrouter::query::field("name").prefix("Ad");
    /// ```
    pub fn prefix(self, prefix: impl Into<String>) -> Filter {
        Filter::Prefix {
            field: self.0,
            prefix: prefix.into(),
        }
    }

    /// String field contains `needle` (literal, case-sensitive).
    ///
    /// ```
    /// let _ = polyrouter::query::field("name").contains("da");
    /// ```
    pub fn contains(self, needle: impl Into<String>) -> Filter {
        Filter::Contains {
            field: self.0,
            needle: needle.into(),
        }
    }

    /// Field is null.
    ///
    /// ```
    /// let _ = polyrouter::query::field("deleted_at").is_null();
    /// ```
    pub fn is_null(self) -> Filter {
        Filter::IsNull(self.0)
    }

    /// Field is not null.
    ///
    /// ```
    /// let _ = polyrouter::query::field("deleted_at").is_not_null();
    /// ```
    pub fn is_not_null(self) -> Filter {
        Filter::IsNull(self.0).not()
    }
}

/// Sort direction. Nulls sort first ascending and last descending, in every store.
///
/// ```
/// assert_ne!(polyrouter::query::Direction::Asc, polyrouter::query::Direction::Desc);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// One sort key.
///
/// ```
/// let o = polyrouter::query::Order { field: "age".into(), direction: polyrouter::query::Direction::Desc };
/// assert_eq!(o.field, "age");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Order {
    /// Field name.
    pub field: String,
    /// Direction.
    pub direction: Direction,
}

/// A query: filter, sort, limit and the continuation of a previous page.
///
/// Results are always ordered: by the sort keys given, then by the key, so
/// paging is stable and every row appears exactly once.
///
/// ```
/// use polyrouter::query::{field, Query};
/// let q = Query::new().filter(field("n").gt(1)).limit(10);
/// assert!(q.filter.is_some());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Optional filter.
    pub filter: Option<Filter>,
    /// Sort keys, most significant first (the key is always appended).
    pub order: Vec<Order>,
    /// Maximum rows in one page; `None` uses the router's default page size.
    pub limit: Option<u32>,
    /// Where the previous page ended (from [`Page::next`](crate::Page::next)).
    pub after: Option<String>,
}

impl Query {
    /// An empty query: all rows, ordered by key.
    ///
    /// ```
    /// assert!(polyrouter::query::Query::new().filter.is_none());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a filter, and-ed with any existing one.
    ///
    /// ```
    /// use polyrouter::query::{field, Query};
    /// let q = Query::new().filter(field("a").eq(1)).filter(field("b").eq(2));
    /// assert!(matches!(q.filter, Some(polyrouter::query::Filter::And(_))));
    /// ```
    pub fn filter(mut self, f: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(prev) => prev.and(f),
            None => f,
        });
        self
    }

    /// Sorts ascending by `field` (after earlier sort keys).
    ///
    /// ```
    /// let q = polyrouter::query::Query::new().order_by("a");
    /// assert_eq!(q.order.len(), 1);
    /// ```
    pub fn order_by(mut self, field: impl Into<String>) -> Self {
        self.order.push(Order {
            field: field.into(),
            direction: Direction::Asc,
        });
        self
    }

    /// Sorts descending by `field` (after earlier sort keys).
    ///
    /// ```
    /// let q = polyrouter::query::Query::new().order_by_desc("a");
    /// assert_eq!(q.order[0].direction, polyrouter::query::Direction::Desc);
    /// ```
    pub fn order_by_desc(mut self, field: impl Into<String>) -> Self {
        self.order.push(Order {
            field: field.into(),
            direction: Direction::Desc,
        });
        self
    }

    /// At most `n` rows per page.
    ///
    /// ```
    /// assert_eq!(polyrouter::query::Query::new().limit(5).limit, Some(5));
    /// ```
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Continues after a page's continuation token.
    ///
    /// ```
    /// let q = polyrouter::query::Query::new().after("token");
    /// assert_eq!(q.after.as_deref(), Some("token"));
    /// ```
    pub fn after(mut self, token: impl Into<String>) -> Self {
        self.after = Some(token.into());
        self
    }
}

pub(crate) mod check;
pub(crate) use check::{dismantle, normalize};

/// The deepest a filter may nest: a leaf (`eq`, `in`, `prefix`, …) is one
/// level, and each `and`, `or` and `not` around it one more. A deeper
/// filter is refused with [`Error::InvalidInput`](crate::Error::InvalidInput)
/// before any I/O (and before any recursion over it), so no filter built
/// through the public API can overflow the stack while it is checked or
/// translated.
///
/// ```
/// use polyrouter::query::{field, MAX_FILTER_DEPTH};
/// let mut f = field("a").eq(1);
/// for _ in 1..MAX_FILTER_DEPTH {
///     f = f.not(); // 64 levels: accepted
/// }
/// ```
pub const MAX_FILTER_DEPTH: usize = 64;
