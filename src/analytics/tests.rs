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

mod series {
    use datafusion::logical_expr::{col, lit};
    use datafusion::scalar::ScalarValue;

    use crate::analytics::series::{Bounds, bounds};

    fn at_ns(ns: i64) -> datafusion::prelude::Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(ns),
            Some("UTC".into()),
        ))
    }

    fn range(from: i64, to: i64) -> Option<Bounds> {
        Some(Bounds {
            from,
            to,
            keys: None,
        })
    }

    #[test]
    fn sub_microsecond_bounds_round_to_the_points_they_hold() {
        let (all_from, all_to) = (Bounds::all().from, Bounds::all().to);
        // ts >= 1.5 µs holds from 2 µs; ts > 1.5 µs too; ts > 1 µs from 2 µs.
        assert_eq!(bounds(&col("ts").gt_eq(at_ns(1500))), range(2, all_to));
        assert_eq!(bounds(&col("ts").gt(at_ns(1500))), range(2, all_to));
        assert_eq!(bounds(&col("ts").gt(at_ns(1000))), range(2, all_to));
        // ts < 1.5 µs holds up to 1 µs; ts <= 1 µs too.
        assert_eq!(bounds(&col("ts").lt(at_ns(1500))), range(all_from, 2));
        assert_eq!(bounds(&col("ts").lt_eq(at_ns(1000))), range(all_from, 2));
        // Before the epoch: -1.5 µs lies between -2 and -1.
        assert_eq!(bounds(&col("ts").gt_eq(at_ns(-1500))), range(-1, all_to));
        assert_eq!(bounds(&col("ts").gt(at_ns(-1500))), range(-1, all_to));
        assert_eq!(bounds(&col("ts").lt(at_ns(-1500))), range(all_from, -1));
        assert_eq!(bounds(&col("ts").lt_eq(at_ns(-1500))), range(all_from, -1));
        // Equality with a point between microseconds holds nowhere.
        assert_eq!(bounds(&col("ts").eq(at_ns(1500))), range(0, 0));
        assert_eq!(bounds(&col("ts").eq(at_ns(-3000))), range(-3, -2));
        // The literal on the left flips the operator.
        assert_eq!(bounds(&at_ns(5000).gt(col("ts"))), range(all_from, 5));
    }

    #[test]
    fn series_keys_and_what_stays_in_datafusion() {
        let keys = |k: &[&str]| {
            Some(Bounds {
                keys: Some(k.iter().map(|s| s.to_string()).collect()),
                ..Bounds::all()
            })
        };
        assert_eq!(bounds(&col("series").eq(lit("a"))), keys(&["a"]));
        assert_eq!(
            bounds(&col("series").eq(lit("a")).or(col("series").eq(lit("b")))),
            keys(&["a", "b"])
        );
        assert_eq!(
            bounds(&col("series").in_list(vec![lit("b"), lit("a")], false)),
            keys(&["a", "b"])
        );
        let both = bounds(&col("series").eq(lit("a")).and(col("ts").lt(at_ns(7000)))).unwrap();
        assert_eq!((both.to, both.keys.map(|k| k.len())), (7, Some(1)));
        // Not exact: left to DataFusion.
        assert_eq!(bounds(&col("series").not_eq(lit("a"))), None);
        assert_eq!(bounds(&col("series").in_list(vec![lit("a")], true)), None);
        assert_eq!(bounds(&col("series").like(lit("a%"))), None);
        assert_eq!(bounds(&col("temp").gt(lit(1.0))), None);
        assert_eq!(bounds(&col("ts").not_eq(at_ns(1000))), None);
        assert_eq!(
            bounds(&col("ts").lt(at_ns(1000)).or(col("ts").gt(at_ns(9000)))),
            None
        );
        assert_eq!(
            bounds(&col("series").eq(lit("a")).or(col("temp").gt(lit(1.0)))),
            None
        );
    }
}
