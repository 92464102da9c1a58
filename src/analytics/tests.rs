use std::ops::Not;

use datafusion::logical_expr::{col, lit};
use datafusion::prelude::Expr;

use super::pushdown::{Pushed, push, when_true};
use super::schema::columns;
use crate::query::{Filter, field};
use crate::{FieldDef, FieldKind, FilterCaps, KeyKind, Schema};

static FIELDS: [FieldDef; 5] = [
    FieldDef::required("id", FieldKind::Int),
    FieldDef::nullable("name", FieldKind::String),
    FieldDef::required("n", FieldKind::Int),
    FieldDef::nullable("flag", FieldKind::Bool),
    FieldDef::nullable("doc", FieldKind::Json),
];
static SCHEMA: Schema = Schema {
    name: "t",
    key: "id",
    key_kind: KeyKind::Int,
    partition_key: None,
    version: None,
    fields: &FIELDS,
};

fn t(e: Expr) -> Option<Filter> {
    when_true(&SCHEMA, &columns(&SCHEMA), &e)
}

#[test]
fn not_equal_excludes_nulls_as_sql_does() {
    assert_eq!(
        t(col("name").not_eq(lit("a"))),
        Some(Filter::And(vec![
            field("name").is_not_null(),
            field("name").ne("a")
        ]))
    );
    // A non-null field needs no guard.
    assert_eq!(t(col("n").not_eq(lit(1i64))), Some(field("n").ne(1i64)));
}

#[test]
fn not_is_the_false_side_of_three_valued_logic() {
    // NOT (name = 'a'): true only when name is non-null and differs.
    assert_eq!(
        t(col("name").eq(lit("a")).not()),
        Some(Filter::And(vec![
            field("name").is_not_null(),
            field("name").ne("a")
        ]))
    );
    // NOT (a OR b) = NOT a AND NOT b, each false side guarded.
    let f = t(col("n").lt(lit(3i64)).or(col("n").gt(lit(9i64))).not()).unwrap();
    assert_eq!(
        f,
        Filter::And(vec![field("n").ge(3i64), field("n").le(9i64)])
    );
    // NOT flag: flag = false (null stays out).
    assert_eq!(t(col("flag").not()), Some(field("flag").eq(false)));
}

#[test]
fn literal_on_the_left_flips_the_operator() {
    assert_eq!(t(lit(5i64).lt(col("n"))), Some(field("n").gt(5i64)));
}

#[test]
fn like_becomes_prefix_or_contains_only_when_literal() {
    assert_eq!(
        t(col("name").like(lit("ab%"))),
        Some(field("name").prefix("ab"))
    );
    assert_eq!(
        t(col("name").like(lit("%ab%"))),
        Some(field("name").contains("ab"))
    );
    assert_eq!(t(col("name").like(lit("a_b%"))), None);
    assert_eq!(t(col("name").ilike(lit("ab%"))), None);
}

#[test]
fn casts_json_and_column_pairs_stay_in_datafusion() {
    assert_eq!(t(col("doc").eq(lit("x"))), None);
    assert_eq!(t(col("n").eq(col("id"))), None);
    assert_eq!(t(col("n").eq(lit(1.5f64))), None);
    assert_eq!(
        t(col("n").in_list(vec![lit(1i64), lit(ScalarNull)], false)),
        None
    );
}

#[allow(non_upper_case_globals)]
const ScalarNull: datafusion::scalar::ScalarValue = datafusion::scalar::ScalarValue::Int64(None);

#[test]
fn a_store_without_the_operator_gets_nothing() {
    let caps = FilterCaps {
        prefix: false,
        ..FilterCaps::all()
    };
    let cols = columns(&SCHEMA);
    assert_eq!(
        push(&SCHEMA, &cols, &caps, &col("name").like(lit("ab%"))),
        Pushed::Unsupported
    );
    assert!(matches!(
        push(&SCHEMA, &cols, &caps, &col("n").gt(lit(1i64))),
        Pushed::Exact(_)
    ));
    assert_eq!(
        push(&SCHEMA, &cols, &FilterCaps::none(), &col("n").gt(lit(1i64))),
        Pushed::Unsupported
    );
}
