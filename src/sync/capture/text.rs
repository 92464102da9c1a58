//! Column values in PostgreSQL's text output (`DateStyle = ISO`,
//! `TimeZone = UTC`, `bytea_output = hex`) as typed [`Value`]s.

use chrono::{DateTime, Utc};

use crate::entity::FieldKind;
use crate::{Key, KeyKind, Value};

/// A field's value from its text form.
pub(crate) fn value(kind: FieldKind, s: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("{s:?} is not {what}");
    Ok(match kind {
        FieldKind::Bool => match s {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        FieldKind::Int => Value::I64(s.parse().map_err(|_| bad("a 64-bit integer"))?),
        FieldKind::Float => Value::F64(match s {
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            "NaN" => return Err(bad("a number (polyrouter floats are never NaN)")),
            _ => s.parse().map_err(|_| bad("a float"))?,
        }),
        FieldKind::String => Value::String(s.to_string()),
        FieldKind::Bytes => Value::Bytes(hex(s).ok_or_else(|| bad("hex bytea (\\x…)"))?),
        FieldKind::Timestamp => Value::Timestamp(
            DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z")
                .map_err(|_| bad("an ISO timestamp with time zone"))?
                .with_timezone(&Utc),
        ),
        FieldKind::Uuid => Value::Uuid(uuid::Uuid::parse_str(s).map_err(|_| bad("a UUID"))?),
        FieldKind::Json => Value::Json(serde_json::from_str(s).map_err(|_| bad("JSON"))?),
    })
}

/// A key from its text form.
pub(crate) fn key(kind: KeyKind, s: &str) -> Result<Key, String> {
    Ok(match kind {
        KeyKind::Str => Key::Str(s.to_string()),
        KeyKind::Int => Key::Int(
            s.parse()
                .map_err(|_| format!("key {s:?} is not a 64-bit integer"))?,
        ),
        KeyKind::Uuid => {
            Key::Uuid(uuid::Uuid::parse_str(s).map_err(|_| format!("key {s:?} is not a UUID"))?)
        }
    })
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let h = s.strip_prefix("\\x")?;
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_kind() {
        assert_eq!(value(FieldKind::Bool, "t").unwrap(), Value::Bool(true));
        assert_eq!(value(FieldKind::Int, "-7").unwrap(), Value::I64(-7));
        assert_eq!(
            value(FieldKind::Float, "-Infinity").unwrap(),
            Value::F64(f64::NEG_INFINITY)
        );
        assert!(value(FieldKind::Float, "NaN").is_err());
        assert_eq!(
            value(FieldKind::Bytes, "\\x00ff").unwrap(),
            Value::Bytes(vec![0, 255])
        );
        let Value::Timestamp(t) =
            value(FieldKind::Timestamp, "2026-12-05 05:37:20.123456+00").unwrap()
        else {
            panic!()
        };
        assert_eq!(t.timestamp_micros() % 1_000_000, 123_456);
        assert!(value(FieldKind::Timestamp, "2026-12-05 05:37:20+00").is_ok());
        assert_eq!(
            value(FieldKind::Json, "{\"a\": 1}").unwrap(),
            Value::Json(serde_json::json!({"a": 1}))
        );
        assert_eq!(key(KeyKind::Int, "42").unwrap(), Key::Int(42));
        assert!(key(KeyKind::Uuid, "x").is_err());
    }
}
