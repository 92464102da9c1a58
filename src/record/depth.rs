//! JSON fields with a nesting limit checked while they are built: a value
//! nested deeper than the limit is refused at the first array or object
//! past it, so neither the value's own `Serialize` nor anything after it
//! (encoding, size estimates, the stores' parsers) recurses deeper.

use serde::ser::{self, Serialize, Serializer};

/// The deepest nesting of arrays and objects a JSON field may have: every
/// store can read it back (serde_json refuses text nested 128 deep; the redis and
/// cosmos stores wrap the field in the record's own object; MySQL's `JSON`
/// type stops at 100), with room to spare. A deeper value is refused by
/// `put` with [`Error::InvalidInput`](crate::Error::InvalidInput) before
/// anything is sent.
///
/// ```
/// assert_eq!(polyrouter::record::MAX_JSON_DEPTH, 64);
/// ```
pub const MAX_JSON_DEPTH: usize = 64;

/// `value` as a JSON value, or an error when it nests arrays and objects
/// deeper than [`MAX_JSON_DEPTH`] (or does not serialize as JSON).
pub(crate) fn to_json(value: &(impl Serialize + ?Sized)) -> Result<serde_json::Value, String> {
    Limited {
        value,
        left: MAX_JSON_DEPTH,
    }
    .serialize(serde_json::value::Serializer)
    .map_err(|e| e.to_string())
}

/// The nesting of a JSON value (`0` for a scalar, `1` for `[]` or `{}`),
/// counted without recursion.
/// Only tests use it.
#[cfg(test)]
pub(crate) fn depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Array(a) => Box::new(a.iter()),
            serde_json::Value::Object(o) => Box::new(o.values()),
            _ => {
                deepest = deepest.max(d);
                continue;
            }
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

fn too_deep<E: ser::Error>() -> E {
    E::custom(format!(
        "JSON nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects, the most every store can read back; flatten the value or store it as a string or bytes field"
    ))
}

/// A value serialized with `left` more levels of nesting allowed.
struct Limited<'a, T: ?Sized> {
    value: &'a T,
    left: usize,
}

impl<T: Serialize + ?Sized> Serialize for Limited<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(LimitSer {
            inner: s,
            left: self.left,
        })
    }
}

/// Forwards to `inner`, counting down `left` at each array or object.
struct LimitSer<S> {
    inner: S,
    left: usize,
}

impl<S: Serializer> LimitSer<S> {
    /// The levels left inside a container that opens `levels` levels.
    fn enter(&self, levels: usize) -> Result<usize, S::Error> {
        self.left.checked_sub(levels).ok_or_else(too_deep)
    }
}

/// An array or object being built, its elements limited to `left` levels.
struct Compound<C> {
    inner: C,
    left: usize,
}

impl<C> Compound<C> {
    fn at<'a, T: ?Sized>(&self, value: &'a T) -> Limited<'a, T> {
        Limited {
            value,
            left: self.left,
        }
    }
}

macro_rules! forward {
    ($($m:ident($($a:ident: $t:ty),*)),* $(,)?) => {$(
        fn $m(self, $($a: $t),*) -> Result<S::Ok, S::Error> {
            self.inner.$m($($a),*)
        }
    )*};
}

impl<S: Serializer> Serializer for LimitSer<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward!(
        serialize_bool(v: bool),
        serialize_i8(v: i8),
        serialize_i16(v: i16),
        serialize_i32(v: i32),
        serialize_i64(v: i64),
        serialize_i128(v: i128),
        serialize_u8(v: u8),
        serialize_u16(v: u16),
        serialize_u32(v: u32),
        serialize_u64(v: u64),
        serialize_u128(v: u128),
        serialize_f32(v: f32),
        serialize_f64(v: f64),
        serialize_char(v: char),
        serialize_str(v: &str),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(name: &'static str),
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str),
    );

    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        // JSON has no bytes: an array of numbers.
        self.enter(1)?;
        self.inner.serialize_bytes(v)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let left = self.left;
        self.inner.serialize_some(&Limited { value, left })
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let left = self.left;
        self.inner
            .serialize_newtype_struct(name, &Limited { value, left })
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        // `{"variant": value}`
        let left = self.enter(1)?;
        self.inner
            .serialize_newtype_variant(name, index, variant, &Limited { value, left })
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let left = self.enter(1)?;
        let inner = self.inner.serialize_seq(len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let left = self.enter(1)?;
        let inner = self.inner.serialize_tuple(len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let left = self.enter(1)?;
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        // `{"variant": [...]}`
        let left = self.enter(2)?;
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let left = self.enter(1)?;
        let inner = self.inner.serialize_map(len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let left = self.enter(1)?;
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(Compound { inner, left })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        // `{"variant": {...}}`
        let left = self.enter(2)?;
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(Compound { inner, left })
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// The element or field methods of a compound: each value limited to the
/// levels left inside it.
macro_rules! limited_elements {
    ($($tr:ident::$m:ident),* $(,)?) => {$(
        impl<C: ser::$tr> ser::$tr for Compound<C> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn $m<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
                let v = self.at(v);
                self.inner.$m(&v)
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                self.inner.end()
            }
        }
    )*};
}

limited_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

/// The named-field methods of a struct or struct variant.
macro_rules! limited_fields {
    ($($tr:ident),* $(,)?) => {$(
        impl<C: ser::$tr> ser::$tr for Compound<C> {
            type Ok = C::Ok;
            type Error = C::Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                v: &T,
            ) -> Result<(), C::Error> {
                let v = self.at(v);
                self.inner.serialize_field(key, &v)
            }
            fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
                self.inner.skip_field(key)
            }
            fn end(self) -> Result<C::Ok, C::Error> {
                self.inner.end()
            }
        }
    )*};
}

limited_fields!(SerializeStruct, SerializeStructVariant);

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), C::Error> {
        let k = self.at(k);
        self.inner.serialize_key(&k)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), C::Error> {
        let v = self.at(v);
        self.inner.serialize_value(&v)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `[[[...]]]` nested `n` deep, built without recursion.
    fn nested(n: usize) -> serde_json::Value {
        let mut v = json!(1);
        for _ in 0..n {
            v = serde_json::Value::Array(vec![v]);
        }
        v
    }

    #[test]
    fn values_up_to_the_limit_are_kept_exactly() {
        let v = nested(MAX_JSON_DEPTH);
        assert_eq!(to_json(&v).unwrap(), v);
        assert_eq!(depth(&v), MAX_JSON_DEPTH);
        let mixed = json!({"a": [1, {"b": [null, "x", 2.5]}], "c": u64::MAX, "d": i64::MIN});
        assert_eq!(to_json(&mixed).unwrap(), mixed);
        assert_eq!(depth(&mixed), 4);
        assert_eq!(depth(&json!(3)), 0);
    }

    #[test]
    fn deeper_values_are_refused_without_overflowing_the_stack() {
        let e = to_json(&nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert!(e.contains("deeper than 64"), "{e}");
        // Deep enough that an unguarded serializer would overflow a test
        // thread's stack; dropped without recursion too (`serde_json`
        // drops arrays recursively, so take it apart by hand).
        let mut deep = nested(200_000);
        assert!(to_json(&deep).is_err());
        while let serde_json::Value::Array(mut a) = deep {
            deep = a.pop().unwrap_or_default();
        }
    }

    #[test]
    fn enums_and_structs_count_the_levels_json_gives_them() {
        #[derive(serde::Serialize)]
        enum E {
            Tuple(i32, i32),
            Struct { a: i32 },
            New(Vec<i32>),
        }
        #[derive(serde::Serialize)]
        #[serde(untagged)]
        enum N {
            Leaf(E),
            Arr(Vec<N>),
        }
        // `{"Tuple": [1, 2]}`, `{"Struct": {"a": 1}}` and `{"New": [1]}`
        // are two levels each.
        let within = |e: E, arrays: usize| {
            let mut n = N::Leaf(e);
            for _ in 0..arrays {
                n = N::Arr(vec![n]);
            }
            n
        };
        let all = || [E::Tuple(1, 2), E::Struct { a: 1 }, E::New(vec![1])];
        for e in all() {
            let v = to_json(&within(e, MAX_JSON_DEPTH - 2)).unwrap();
            assert_eq!(depth(&v), MAX_JSON_DEPTH);
        }
        for e in all() {
            assert!(to_json(&within(e, MAX_JSON_DEPTH - 1)).is_err());
        }
        let typed = vec![vec![E::Tuple(1, 2)]];
        assert_eq!(to_json(&typed).unwrap(), json!([[{"Tuple": [1, 2]}]]));
    }
}
