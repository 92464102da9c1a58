//! Continuation tokens: keyset positions, checked before use.
//!
//! A token holds the sort-key values of the last row of a page and a
//! fingerprint of the query (entity, filter, order) it belongs to, with a
//! checksum over both. A token from another query, a truncated or edited
//! token, or one whose values don't fit the sort fields' types is
//! rejected with [`Error::InvalidInput`](crate::Error::InvalidInput): never a wrong page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use crate::Value;
use crate::entity::{FieldKind, Schema};
use crate::query::{Direction, Filter, Order};

const FORMAT: u8 = 1;

/// FNV-1a 64: stable across Rust versions and platforms.
pub(crate) fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fingerprint of a query's shape, so a token only continues its own query.
pub(crate) fn fingerprint(entity: &str, filter: Option<&Filter>, order: &[Order]) -> u64 {
    let text = format!("{entity}\u{0}{filter:?}\u{0}{order:?}");
    fnv(text.as_bytes(), 0)
}

/// Encodes the position after `values` (one per order key).
pub(crate) fn encode(fingerprint: u64, values: &[&Value]) -> String {
    let mut b = vec![FORMAT];
    b.extend_from_slice(&fingerprint.to_be_bytes());
    b.push(values.len() as u8);
    for v in values {
        put_value(&mut b, v);
    }
    let sum = fnv(&b, 0x5eed);
    b.extend_from_slice(&sum.to_be_bytes()[..4]);
    URL_SAFE_NO_PAD.encode(b)
}

/// Decodes a token for the query with this fingerprint and order.
pub(crate) fn decode(
    token: &str,
    fingerprint: u64,
    schema: &Schema,
    order: &[Order],
) -> Result<Vec<Value>, String> {
    let bad =
        |why: &str| format!("continuation token rejected: {why}; start again from the first page");
    let b = URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| bad("not a polyrouter token"))?;
    if b.len() < 14 {
        return Err(bad("too short"));
    }
    let (body, sum) = b.split_at(b.len() - 4);
    if fnv(body, 0x5eed).to_be_bytes()[..4] != *sum {
        return Err(bad(
            "checksum mismatch (the token was altered or truncated)",
        ));
    }
    if body[0] != FORMAT {
        return Err(bad("unknown token format"));
    }
    if body[1..9] != fingerprint.to_be_bytes() {
        return Err(bad(
            "it belongs to a different query (entity, filter or order changed)",
        ));
    }
    let n = body[9] as usize;
    if n != order.len() {
        return Err(bad("wrong number of sort values"));
    }
    let mut r = Reader(&body[10..]);
    let mut out = Vec::with_capacity(n);
    for o in order {
        let v = r.value().ok_or_else(|| bad("malformed value"))?;
        let def = schema
            .field(&o.field)
            .ok_or_else(|| bad("unknown sort field"))?;
        let fits = match (&v, def.ty.kind) {
            (Value::Null, _) => def.ty.nullable,
            (Value::Bool(_), FieldKind::Bool)
            | (Value::I64(_), FieldKind::Int)
            | (Value::F64(_), FieldKind::Float)
            | (Value::String(_), FieldKind::String)
            | (Value::Bytes(_), FieldKind::Bytes)
            | (Value::Timestamp(_), FieldKind::Timestamp)
            | (Value::Uuid(_), FieldKind::Uuid)
            | (Value::Json(_), FieldKind::Json) => true,
            _ => false,
        };
        if !fits {
            return Err(bad("a sort value does not match its field's type"));
        }
        out.push(v);
    }
    if !r.0.is_empty() {
        return Err(bad("trailing data"));
    }
    Ok(out)
}

/// The filter selecting rows strictly after `last` in `order`
/// (nulls first ascending, last descending).
pub(crate) fn after_filter(order: &[Order], last: &[Value]) -> Filter {
    let mut branches = Vec::with_capacity(order.len());
    for i in 0..order.len() {
        let mut all: Vec<Filter> = (0..i).map(|j| equal(&order[j].field, &last[j])).collect();
        all.push(beyond(&order[i], &last[i]));
        branches.push(if all.len() == 1 {
            all.pop().unwrap_or(Filter::Or(vec![]))
        } else {
            Filter::And(all)
        });
    }
    if branches.len() == 1 {
        branches.pop().unwrap_or(Filter::Or(vec![]))
    } else {
        Filter::Or(branches)
    }
}

fn equal(field: &str, v: &Value) -> Filter {
    if v.is_null() {
        Filter::IsNull(field.into())
    } else {
        crate::query::field(field).eq(v.clone())
    }
}

fn beyond(o: &Order, v: &Value) -> Filter {
    let f = || crate::query::field(o.field.clone());
    match (o.direction, v.is_null()) {
        (Direction::Asc, true) => f().is_not_null(),
        (Direction::Asc, false) => f().gt(v.clone()),
        (Direction::Desc, true) => Filter::Or(vec![]),
        (Direction::Desc, false) => f().lt(v.clone()).or(f().is_null()),
    }
}

fn put_value(b: &mut Vec<u8>, v: &Value) {
    let bytes = |b: &mut Vec<u8>, tag: u8, data: &[u8]| {
        b.push(tag);
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(data);
    };
    match v {
        Value::Null => b.push(0),
        Value::Bool(x) => b.extend_from_slice(&[1, *x as u8]),
        Value::I64(x) => {
            b.push(2);
            b.extend_from_slice(&x.to_be_bytes())
        }
        Value::F64(x) => {
            b.push(3);
            b.extend_from_slice(&x.to_bits().to_be_bytes())
        }
        Value::String(s) => bytes(b, 4, s.as_bytes()),
        Value::Bytes(x) => bytes(b, 5, x),
        Value::Timestamp(t) => {
            b.push(6);
            b.extend_from_slice(&t.timestamp_micros().to_be_bytes())
        }
        Value::Uuid(u) => {
            b.push(7);
            b.extend_from_slice(u.as_bytes())
        }
        Value::Json(j) => bytes(b, 8, j.to_string().as_bytes()),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(a)
    }
    fn u64(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }
    fn blob(&mut self) -> Option<Vec<u8>> {
        let n = u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize;
        Some(self.take(n)?.to_vec())
    }
    fn value(&mut self) -> Option<Value> {
        Some(match self.take(1)?[0] {
            0 => Value::Null,
            1 => Value::Bool(match self.take(1)?[0] {
                0 => false,
                1 => true,
                _ => return None,
            }),
            2 => Value::I64(i64::from_be_bytes(self.u64()?)),
            3 => {
                let f = f64::from_bits(u64::from_be_bytes(self.u64()?));
                if f.is_nan() {
                    return None;
                }
                Value::F64(f)
            }
            4 => Value::String(String::from_utf8(self.blob()?).ok()?),
            5 => Value::Bytes(self.blob()?),
            6 => Value::Timestamp(DateTime::<Utc>::from_timestamp_micros(i64::from_be_bytes(
                self.u64()?,
            ))?),
            7 => Value::Uuid(uuid::Uuid::from_slice(self.take(16)?).ok()?),
            8 => Value::Json(serde_json::from_slice(&self.blob()?).ok()?),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyKind;
    use crate::entity::{FieldDef, FieldType};

    static FIELDS: [FieldDef; 2] = [
        FieldDef {
            name: "id",
            ty: FieldType::required(FieldKind::String),
        },
        FieldDef {
            name: "n",
            ty: FieldType {
                kind: FieldKind::Int,
                nullable: true,
            },
        },
    ];
    static SCHEMA: Schema = Schema {
        name: "t",
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: None,
        version: None,
        fields: &FIELDS,
    };

    fn order() -> Vec<Order> {
        vec![
            Order {
                field: "n".into(),
                direction: Direction::Asc,
            },
            Order {
                field: "id".into(),
                direction: Direction::Asc,
            },
        ]
    }

    #[test]
    fn round_trips_and_rejects_tampering() {
        let fp = fingerprint("t", None, &order());
        let t = encode(fp, &[&Value::Null, &Value::from("k'1")]);
        assert_eq!(
            decode(&t, fp, &SCHEMA, &order()).unwrap(),
            vec![Value::Null, Value::from("k'1")]
        );
        assert!(
            decode(&t, fp ^ 1, &SCHEMA, &order())
                .unwrap_err()
                .contains("different query")
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[12] ^= 0xff;
        let forged = URL_SAFE_NO_PAD.encode(&raw);
        assert!(
            decode(&forged, fp, &SCHEMA, &order())
                .unwrap_err()
                .contains("checksum")
        );
        assert!(decode("!!!", fp, &SCHEMA, &order()).is_err());
        assert!(decode(&t[..t.len() - 3], fp, &SCHEMA, &order()).is_err());
        // Well-formed and checksummed, but a string where an int belongs.
        let wrong = encode(fp, &[&Value::from("x"), &Value::from("k")]);
        assert!(
            decode(&wrong, fp, &SCHEMA, &order())
                .unwrap_err()
                .contains("type")
        );
    }
}
