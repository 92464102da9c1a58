//! The randomized reference comparison every SQL dialect runs: 240 rows of
//! every kind (nulls, extremes, wildcard characters, NUL, mixed numbers),
//! then 400 random filters × order × limit per seed, each query and count
//! compared with [`crate::store::eval`] on the same data.

use chrono::DateTime;
use serde_json::json;
use uuid::Uuid;

use super::Dialect;
use crate::entity::{FieldDef, FieldKind, Schema};
use crate::query::{CmpOp, Direction, Filter, Order};
use crate::store::{EntityInfo, Precondition, StoreQuery, WriteOp, eval};
use crate::{Key, KeyKind, Record, Store, Value};

/// Every kind, required and optional, with a UUID key (the round trips
/// of the SQL stores' tests).
pub static EVERY_FIELDS: [FieldDef; 16] = [
    FieldDef::required("id", FieldKind::Uuid),
    FieldDef::required("b", FieldKind::Bool),
    FieldDef::required("i", FieldKind::Int),
    FieldDef::required("f", FieldKind::Float),
    FieldDef::required("s", FieldKind::String),
    FieldDef::required("by", FieldKind::Bytes),
    FieldDef::required("ts", FieldKind::Timestamp),
    FieldDef::required("u", FieldKind::Uuid),
    FieldDef::required("j", FieldKind::Json),
    FieldDef::nullable("ob", FieldKind::Bool),
    FieldDef::nullable("oi", FieldKind::Int),
    FieldDef::nullable("of", FieldKind::Float),
    FieldDef::nullable("os", FieldKind::String),
    FieldDef::nullable("oby", FieldKind::Bytes),
    FieldDef::nullable("ots", FieldKind::Timestamp),
    FieldDef::nullable("oj", FieldKind::Json),
];
pub static EVERY: Schema = Schema {
    name: "every",
    key: "id",
    key_kind: KeyKind::Uuid,
    partition_key: None,
    version: Some("version"),
    fields: &EVERY_FIELDS,
};

/// String keys and awkward field names (MariaDB's tests have their own,
/// with a backtick where this has a double quote).
pub static NOTE_FIELDS: [FieldDef; 5] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("body", FieldKind::String),
    FieldDef::nullable("group", FieldKind::Int),
    FieldDef::nullable("a\"b", FieldKind::String),
    FieldDef::nullable("'; DROP TABLE x; --", FieldKind::String),
];
pub static NOTE: Schema = Schema {
    name: "note",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &NOTE_FIELDS,
};

/// `schema`'s entity in `table`, routed to the store `db`.
pub fn info(schema: &'static Schema, table: &str) -> EntityInfo {
    EntityInfo {
        table: table.into(),
        store: "db".into(),
        ..EntityInfo::new(schema)
    }
}

/// Integer keys, every kind nullable: the query comparison table.
pub static ROW_FIELDS: [FieldDef; 9] = [
    FieldDef::required("id", FieldKind::Int),
    FieldDef::nullable("b", FieldKind::Bool),
    FieldDef::nullable("i", FieldKind::Int),
    FieldDef::nullable("f", FieldKind::Float),
    FieldDef::nullable("s", FieldKind::String),
    FieldDef::nullable("by", FieldKind::Bytes),
    FieldDef::nullable("ts", FieldKind::Timestamp),
    FieldDef::nullable("u", FieldKind::Uuid),
    FieldDef::nullable("j", FieldKind::Json),
];
/// The schema [`compare_with_reference`] needs its entity to have.
pub static ROW: Schema = Schema {
    name: "row",
    key: "id",
    key_kind: KeyKind::Int,
    partition_key: None,
    version: None,
    fields: &ROW_FIELDS,
};

/// A small deterministic random generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// One of `items`.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

const STRINGS: &[&str] = &[
    "",
    "a",
    "A",
    "ab",
    "abc",
    "a%b",
    "a_b",
    "%",
    "_",
    "b",
    "Z",
    "é",
    "日本",
    "日本語",
    "a\0b",
    "\0",
    "ab\0",
    "zz",
    "ä",
];

fn sample(kind: FieldKind, rng: &mut Rng) -> Value {
    match kind {
        FieldKind::Bool => Value::Bool(rng.below(2) == 0),
        FieldKind::Int => Value::I64(rng.pick(&[-3i64, -1, 0, 1, 2, 3, 7, i64::MIN, i64::MAX])),
        FieldKind::Float => Value::F64(rng.pick(&[
            -1.5,
            0.0,
            0.5,
            1.0,
            2.25,
            3.0,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ])),
        FieldKind::String => Value::from(rng.pick(STRINGS)),
        FieldKind::Bytes => Value::Bytes(rng.pick(&[
            vec![],
            vec![0],
            vec![0, 0],
            vec![1],
            vec![255],
            vec![1, 2, 3],
        ])),
        FieldKind::Timestamp => Value::Timestamp(
            DateTime::from_timestamp_micros(rng.pick(&[
                -1_000_001i64,
                0,
                1,
                999_999,
                1_000_000,
                1_000_001,
                1_700_000_000_000_000,
            ]))
            .unwrap(),
        ),
        FieldKind::Uuid => Value::Uuid(Uuid::from_u128(rng.pick(&[
            0u128,
            1,
            0xA0 << 120,
            u128::MAX,
            0xFF << 64,
        ]))),
        FieldKind::Json => Value::Json(rng.pick(&[
            json!(null),
            json!(1),
            json!("x"),
            json!([1, 2]),
            json!({"a": 1}),
            json!({"b": [null]}),
        ])),
    }
}

/// A random record of [`ROW`] with key `id` that `d` can store (no NUL
/// where text cannot hold it, no infinity where floats cannot).
pub fn row(id: i64, rng: &mut Rng, d: &dyn Dialect) -> Record {
    let text_holds_nul = d.text_holds_nul();
    let mut r = Record::new(Key::Int(id));
    r.set("id", Value::I64(id));
    for f in &ROW_FIELDS[1..] {
        let mut v = if rng.below(4) == 0 {
            Value::Null
        } else {
            sample(f.ty.kind, rng)
        };
        // Where text cannot hold NUL, stored strings have none (operands
        // still do).
        if let (Value::String(s), false) = (&v, text_holds_nul) {
            v = Value::String(s.replace('\0', "~"));
        }
        if let (Value::F64(f), false) = (&v, d.infinite_floats()) {
            if f.is_infinite() {
                v = Value::F64(f.signum() * 1e300);
            }
        }
        r.set(f.name, v);
    }
    r
}

const FIELDS: &[&str] = &["id", "b", "i", "f", "s", "by", "ts", "u", "j"];

fn operand(field: &str, rng: &mut Rng) -> Value {
    let kind = ROW
        .field(field)
        .map(|f| f.ty.kind)
        .unwrap_or(FieldKind::Int);
    match rng.below(20) {
        0 => Value::Null,
        // An operand of another type: compares by type rank.
        1 => sample(
            rng.pick(&[
                FieldKind::Bool,
                FieldKind::Int,
                FieldKind::String,
                FieldKind::Timestamp,
                FieldKind::Json,
            ]),
            rng,
        ),
        // Mixed numbers.
        2 if kind == FieldKind::Float => Value::I64(rng.pick(&[-2i64, 0, 1, 3])),
        2 if kind == FieldKind::Int => Value::F64(rng.pick(&[-0.5, 0.0, 1.0, 2.5, -1e300, 1e300])),
        // A timestamp between two microseconds.
        3 if kind == FieldKind::Timestamp => Value::Timestamp(
            DateTime::from_timestamp(1, rng.pick(&[500u32, 1_500, 999_999_999])).unwrap(),
        ),
        _ if field == "id" => Value::I64(rng.below(60) as i64 - 5),
        _ => sample(kind, rng),
    }
}

fn random_filter(rng: &mut Rng, depth: u32) -> Filter {
    let pick_field = |rng: &mut Rng| {
        if rng.below(30) == 0 {
            "nope".to_string()
        } else {
            rng.pick(FIELDS).to_string()
        }
    };
    let leaf = rng.below(if depth == 0 { 5 } else { 8 });
    match leaf {
        0 | 1 => {
            let f = pick_field(rng);
            let op = rng.pick(&[
                CmpOp::Eq,
                CmpOp::Ne,
                CmpOp::Lt,
                CmpOp::Le,
                CmpOp::Gt,
                CmpOp::Ge,
            ]);
            let value = operand(&f, rng);
            Filter::Cmp {
                field: f,
                op,
                value,
            }
        }
        2 => {
            let f = pick_field(rng);
            let n = rng.below(4);
            Filter::In {
                field: f.clone(),
                values: (0..n).map(|_| operand(&f, rng)).collect(),
            }
        }
        3 => {
            let f = if rng.below(5) == 0 {
                pick_field(rng)
            } else {
                "s".into()
            };
            let s = rng.pick(STRINGS).to_string();
            if rng.below(2) == 0 {
                Filter::Prefix {
                    field: f,
                    prefix: s,
                }
            } else {
                Filter::Contains {
                    field: f,
                    needle: s,
                }
            }
        }
        4 => Filter::IsNull(pick_field(rng)),
        5 => Filter::Not(Box::new(random_filter(rng, depth - 1))),
        6 => Filter::And(
            (0..rng.below(4))
                .map(|_| random_filter(rng, depth - 1))
                .collect(),
        ),
        _ => Filter::Or(
            (0..rng.below(4))
                .map(|_| random_filter(rng, depth - 1))
                .collect(),
        ),
    }
}

fn put(record: Record, precondition: Precondition) -> WriteOp {
    WriteOp::Put {
        record,
        precondition,
        ttl: None,
    }
}

/// Fills `e` (an entity of [`ROW`], ensured and empty) with random rows and
/// checks 400 random queries and counts against the reference evaluator.
/// `d`: the store's dialect (what it can hold); `sql` shows the statement
/// of a query in a failure message.
pub async fn compare_with_reference(
    store: &dyn Store,
    e: &EntityInfo,
    seed: u64,
    d: &dyn Dialect,
    sql: impl Fn(&StoreQuery) -> String,
) {
    let e = e.clone();
    let mut rng = Rng(seed);
    let mut data: Vec<Record> = (0..240).map(|i| row(i - 20, &mut rng, d)).collect();
    store
        .write(
            &e,
            data.iter()
                .cloned()
                .map(|r| put(r, Precondition::None))
                .collect(),
            true,
        )
        .await
        .unwrap();
    for r in &mut data {
        r.version = 1;
    }
    let mut nonempty = 0;
    for round in 0..400 {
        let filter = (round % 10 != 0).then(|| random_filter(&mut rng, 3));
        let order: Vec<Order> = (0..rng.below(4))
            .map(|_| Order {
                field: rng.pick(FIELDS).to_string(),
                direction: rng.pick(&[Direction::Asc, Direction::Desc]),
            })
            .chain([Order {
                field: "id".into(),
                direction: Direction::Asc,
            }])
            .collect();
        let limit = rng.pick(&[None, Some(1), Some(7), Some(100), Some(1000)]);
        let q = StoreQuery {
            filter: filter.clone(),
            order,
            limit,
        };

        let mut want: Vec<&Record> = data
            .iter()
            .filter(|r| filter.as_ref().is_none_or(|f| eval::matches(f, r)))
            .collect();
        let count = want.len() as u64;
        want.sort_by(|a, b| eval::compare(&q.order, a, b));
        want.truncate(limit.unwrap_or(usize::MAX));
        let got = store.query(&e, &q).await.unwrap();
        let got_refs: Vec<&Record> = got.iter().collect();
        let shown = |r: &[&Record]| {
            r.iter()
                .map(|r| r.key.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(
            got_refs == want,
            "query {q:?}\n  sql: {}\n  got:  {}\n  want: {}",
            sql(&q),
            shown(&got_refs),
            shown(&want)
        );
        assert_eq!(
            store.count(&e, filter.as_ref()).await.unwrap(),
            count,
            "count {filter:?}"
        );
        if count > 0 && count < data.len() as u64 {
            nonempty += 1;
        }
    }
    // The random filters are selective, not trivially all-or-nothing.
    assert!(nonempty > 120, "seed {seed}: {nonempty}");
}

/// Checks a batch of unconditional puts (the bulk path) gives the versions
/// one upsert per op would: repeated keys count up, expired rows restart at
/// 1, and a TTL in the batch is kept. `e` is an ensured, empty [`ROW`] entity.
pub async fn check_put_many(store: &dyn Store, e: &EntityInfo, d: &dyn Dialect) {
    let mut rng = Rng(99);
    let rec = |id: i64, rng: &mut Rng| row(id, rng, d);
    let batch = |ids: &[i64], rng: &mut Rng| -> Vec<WriteOp> {
        ids.iter()
            .map(|i| put(rec(*i, rng), Precondition::None))
            .collect()
    };
    let versions = |out: Vec<crate::store::WriteOutcome>| -> Vec<u64> {
        out.into_iter()
            .map(|o| match o {
                crate::store::WriteOutcome::Written { version } => version,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let out = store
        .write(e, batch(&[1, 2, 1, 3, 1], &mut rng), true)
        .await
        .unwrap();
    assert_eq!(versions(out), vec![1, 1, 2, 1, 3]);
    let mut ops = batch(&[2, 4], &mut rng);
    if let WriteOp::Put { ttl, .. } = &mut ops[1] {
        *ttl = Some(std::time::Duration::from_millis(1));
    }
    let out = store.write(e, ops, true).await.unwrap();
    assert_eq!(versions(out), vec![2, 1]);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(store.get(e, &Key::Int(4)).await.unwrap().is_none());
    // The expired row restarts at 1; the others count on.
    let out = store
        .write(e, batch(&[4, 1, 2], &mut rng), true)
        .await
        .unwrap();
    assert_eq!(versions(out), vec![1, 4, 3]);
    let got = store.get(e, &Key::Int(1)).await.unwrap().unwrap();
    assert_eq!(got.version, 4);
    assert_eq!(store.count(e, None).await.unwrap(), 4);
    // Many rows: several statements in one transaction.
    let ids: Vec<i64> = (100..12_100).collect();
    let out = store.write(e, batch(&ids, &mut rng), true).await.unwrap();
    assert!(versions(out).iter().all(|v| *v == 1));
    assert_eq!(store.count(e, None).await.unwrap(), 12_004);
}
