//! Canonical JSON written straight from a `Serialize` value, without a `serde_json::Value`
//! in between: every event appended is encoded, and building the `Value` (a `String` per
//! key and leaf, a map per object) cost more than writing the text.
//!
//! The bytes are those of [`crate::envelope::canonical_json`]`(&serde_json::to_value(x)?)`,
//! which the hash chain covers. Each object is written in the order serde gives its fields
//! and then re-laid in key order (a later value of a repeated key wins, as in a `Value`).
//! Whatever this writer does not handle itself (bytes, floats as map keys, serde_json's raw
//! values and arbitrary-precision numbers, a serialisation error) is done the old way, so
//! the result is the same whatever the value.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::ser::{self, Serialize};
use serde_json::{Error, Value};

use crate::envelope::canonical_json;

/// `canonical_json(&serde_json::to_value(value)?)`, without the `Value`.
pub fn to_canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    match written(value) {
        Ok(text) => Ok(text),
        Err(_) => Ok(canonical_json(&serde_json::to_value(value)?)),
    }
}

/// The writer's own path: an error where it leaves the value to the old way.
fn written<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let mut w = Canon::new(None);
    value.serialize(&mut w)?;
    Ok(w.into_string())
}

/// A value serialised as an object with a string field `tag` (an enum with
/// `#[serde(tag = "...")]`): that field's text, and the canonical JSON of the object
/// without it. An error when the value is no such object.
pub fn to_canonical_json_untagged<T: Serialize + ?Sized>(value: &T, tag: &str) -> Result<(String, String), Error> {
    let mut w = Canon::new(Some(tag));
    if value.serialize(&mut w).is_ok() {
        if let Some(Ok(tag_value)) = w.stripped.take().map(|raw| serde_json::from_slice::<String>(&raw)) {
            return Ok((tag_value, w.into_string()));
        }
    }
    let mut v = serde_json::to_value(value)?;
    let obj = v.as_object_mut().ok_or_else(|| ser::Error::custom("not an object"))?;
    match obj.remove(tag) {
        Some(Value::String(t)) => Ok((t, canonical_json(&v))),
        other => Err(ser::Error::custom(format!("field {tag} is not a string: {other:?}"))),
    }
}

/// Whether the writer writes `value` itself (the fast path), without the old way: for
/// tests that the events appended take it.
pub fn writes_itself<T: Serialize + ?Sized>(value: &T, tag: &str) -> bool {
    let mut w = Canon::new(Some(tag));
    value.serialize(&mut w).is_ok() && w.stripped.is_some()
}

/// Asks for the old way (see the module's note).
fn fallback() -> Error {
    ser::Error::custom("not on the canonical writer's path")
}

/// serde_json's private marker structs (raw values, arbitrary-precision numbers).
fn is_private(name: &str) -> bool {
    name.starts_with("$serde_json::private::")
}

/// One field of an object being written: its key, where it starts (the key's quote), where
/// its value starts and where it ends, in the output.
struct Entry {
    key: Cow<'static, str>,
    start: usize,
    value_start: usize,
    end: usize,
}

struct Canon<'t> {
    out: Vec<u8>,
    /// The fields of the objects still open, innermost last.
    entries: Vec<Entry>,
    scratch: Vec<u8>,
    text: String,
    /// How many arrays and objects are open.
    depth: usize,
    /// The field taken out of the outermost object, and its value's JSON once taken.
    strip: Option<&'t str>,
    stripped: Option<Vec<u8>>,
}

impl<'t> Canon<'t> {
    fn new(strip: Option<&'t str>) -> Canon<'t> {
        Canon {
            out: Vec::with_capacity(512),
            entries: Vec::with_capacity(32),
            scratch: vec![],
            text: String::new(),
            depth: 0,
            strip,
            stripped: None,
        }
    }

    fn into_string(self) -> String {
        String::from_utf8(self.out).expect("only UTF-8 is written")
    }

    /// A JSON string, escaped as serde_json escapes it (only `"`, `\` and control
    /// characters are escaped; the common case is copied as it is).
    fn string(&mut self, s: &str) {
        if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.out.push(b'"');
            self.out.extend_from_slice(s.as_bytes());
            self.out.push(b'"');
        } else {
            serde_json::to_writer(&mut self.out, s).expect("a string serialises");
        }
    }

    /// A leaf written as serde_json writes the `Value` it makes of it.
    fn leaf(&mut self, v: Value) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }

    fn open_object(&mut self, variant: Option<&'static str>) -> Obj<'_, 't> {
        let top = self.depth == 0 && variant.is_none();
        self.depth += 1;
        if let Some(v) = variant {
            self.out.push(b'{');
            self.string(v);
            self.out.push(b':');
        }
        self.out.push(b'{');
        Obj {
            start: self.out.len() - 1,
            base: self.entries.len(),
            first: true,
            top,
            variant: variant.is_some(),
            key: None,
            w: self,
        }
    }

    fn open_seq(&mut self, variant: Option<&'static str>) -> Seq<'_, 't> {
        self.depth += 1;
        if let Some(v) = variant {
            self.out.push(b'{');
            self.string(v);
            self.out.push(b':');
        }
        self.out.push(b'[');
        Seq { first: true, variant: variant.is_some(), w: self }
    }
}

impl<'a, 't> ser::Serializer for &'a mut Canon<'t> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a, 't>;
    type SerializeTuple = Seq<'a, 't>;
    type SerializeTupleStruct = Seq<'a, 't>;
    type SerializeTupleVariant = Seq<'a, 't>;
    type SerializeMap = Obj<'a, 't>;
    type SerializeStruct = Obj<'a, 't>;
    type SerializeStructVariant = Obj<'a, 't>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        serde_json::to_writer(&mut self.out, &v)
    }
    // Wide integers and floats go through the `Value` they would become (an f32 is
    // widened to f64 there, a non-finite float is null, a wide integer may not fit).
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.leaf(serde_json::value::Serializer.serialize_i128(v)?)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.leaf(serde_json::value::Serializer.serialize_u128(v)?)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.leaf(serde_json::value::Serializer.serialize_f32(v)?)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.leaf(serde_json::value::Serializer.serialize_f64(v)?)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(fallback())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Error> {
        self.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, v: &T) -> Result<(), Error> {
        if is_private(name) {
            return Err(fallback());
        }
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        self.depth += 1;
        self.out.push(b'{');
        self.string(variant);
        self.out.push(b':');
        v.serialize(&mut *self)?;
        self.out.push(b'}');
        self.depth -= 1;
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a, 't>, Error> {
        Ok(self.open_seq(None))
    }
    fn serialize_tuple(self, _: usize) -> Result<Seq<'a, 't>, Error> {
        Ok(self.open_seq(None))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Seq<'a, 't>, Error> {
        Ok(self.open_seq(None))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Seq<'a, 't>, Error> {
        Ok(self.open_seq(Some(variant)))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Obj<'a, 't>, Error> {
        Ok(self.open_object(None))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Obj<'a, 't>, Error> {
        if is_private(name) {
            return Err(fallback());
        }
        Ok(self.open_object(None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Obj<'a, 't>, Error> {
        Ok(self.open_object(Some(variant)))
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, v: &T) -> Result<(), Error> {
        // Times and hashes: formatted into a reused buffer, not a new String each.
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        write!(text, "{v}").map_err(ser::Error::custom)?;
        self.string(&text);
        self.text = text;
        Ok(())
    }
}

pub struct Seq<'a, 't> {
    w: &'a mut Canon<'t>,
    first: bool,
    /// Inside `{"Variant":…}`.
    variant: bool,
}

impl Seq<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        v.serialize(&mut *self.w)
    }

    fn close(self) -> Result<(), Error> {
        self.w.out.push(b']');
        if self.variant {
            self.w.out.push(b'}');
        }
        self.w.depth -= 1;
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.element(v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTuple for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.element(v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.element(v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleVariant for Seq<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.element(v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

pub struct Obj<'a, 't> {
    w: &'a mut Canon<'t>,
    /// Where its `{` is in the output.
    start: usize,
    /// Its first entry in `w.entries`.
    base: usize,
    first: bool,
    /// The outermost object (the one a tag is taken out of).
    top: bool,
    /// Inside `{"Variant":…}`.
    variant: bool,
    /// A map's key, waiting for its value.
    key: Option<String>,
}

impl Obj<'_, '_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, v: &T) -> Result<(), Error> {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
        let start = self.w.out.len();
        self.w.string(&key);
        self.w.out.push(b':');
        let value_start = self.w.out.len();
        v.serialize(&mut *self.w)?;
        self.w.entries.push(Entry { key, start, value_start, end: self.w.out.len() });
        Ok(())
    }

    /// Lays the fields out again in key order when they were not written in it.
    fn close(self) -> Result<(), Error> {
        let w = self.w;
        let strip = if self.top { w.strip } else { None };
        let list = &mut w.entries[self.base..];
        let in_order = list.windows(2).all(|p| p[0].key < p[1].key);
        if !in_order || strip.is_some() {
            // Ties keep the order they were written in: the last one wins below.
            list.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(a.start.cmp(&b.start)));
            let mut scratch = std::mem::take(&mut w.scratch);
            scratch.clear();
            for (i, e) in list.iter().enumerate() {
                if list.get(i + 1).is_some_and(|next| next.key == e.key) {
                    continue;
                }
                if strip == Some(&*e.key) {
                    w.stripped = Some(w.out[e.value_start..e.end].to_vec());
                    continue;
                }
                if !scratch.is_empty() {
                    scratch.push(b',');
                }
                scratch.extend_from_slice(&w.out[e.start..e.end]);
            }
            w.out.truncate(self.start + 1);
            w.out.extend_from_slice(&scratch);
            w.scratch = scratch;
        }
        w.out.push(b'}');
        if self.variant {
            w.out.push(b'}');
        }
        w.entries.truncate(self.base);
        w.depth -= 1;
        Ok(())
    }
}

impl ser::SerializeStruct for Obj<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), Error> {
        self.entry(Cow::Borrowed(key), v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStructVariant for Obj<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), Error> {
        self.entry(Cow::Borrowed(key), v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeMap for Obj<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(KeyText)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let key = self.key.take().ok_or_else(|| ser::Error::custom("a map value without its key"))?;
        self.entry(Cow::Owned(key), v)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// A map key's text: a string, a newtype of one, or a unit variant (as serde_json makes
/// them keys); any other key takes the old way.
struct KeyText;

impl ser::Serializer for KeyText {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = ser::Impossible<String, Error>;
    type SerializeTuple = ser::Impossible<String, Error>;
    type SerializeTupleStruct = ser::Impossible<String, Error>;
    type SerializeTupleVariant = ser::Impossible<String, Error>;
    type SerializeMap = ser::Impossible<String, Error>;
    type SerializeStruct = ser::Impossible<String, Error>;
    type SerializeStructVariant = ser::Impossible<String, Error>;

    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<String, Error> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, v: &T) -> Result<String, Error> {
        if is_private(name) {
            return Err(fallback());
        }
        v.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_i8(self, _: i8) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_i16(self, _: i16) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_i32(self, _: i32) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_i64(self, _: i64) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_u8(self, _: u8) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_u16(self, _: u16) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_u32(self, _: u32) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_u64(self, _: u64) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_f32(self, _: f32) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_f64(self, _: f64) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_char(self, _: char) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_none(self) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_unit(self) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Error> {
        Err(fallback())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(fallback())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(fallback())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(fallback())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(fallback())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(fallback())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(fallback())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(fallback())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use serde::Serialize;
    use serde_json::{json, Value};

    use super::*;

    /// The bytes the hash chain was built on: through a `Value`.
    fn old<T: Serialize>(v: &T) -> Result<String, Error> {
        Ok(canonical_json(&serde_json::to_value(v)?))
    }

    fn old_untagged<T: Serialize>(v: &T) -> (String, String) {
        let mut value = serde_json::to_value(v).unwrap();
        let Some(Value::String(t)) = value.as_object_mut().unwrap().remove("type") else { panic!("no tag") };
        (t, canonical_json(&value))
    }

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{0,6}",
            any::<String>(),
            Just("type".to_string()),
            Just("a\"b\\c\u{1}\u{7f}é".to_string()),
            Just("Z".to_string()),
        ]
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter("a Value holds finite numbers", |f| f.is_finite()).prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "[\\\\\"\u{0}-\u{1f}a-c]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(arb_key(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    #[derive(Debug, Clone, Serialize)]
    enum Shape {
        Unit,
        Newtype(String),
        Tuple(u8, Option<i32>),
        Struct { z: Decimal, a: Vec<Shape> },
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum Code {
        Cny,
        UsdCash,
    }

    #[derive(Debug, Clone, Serialize)]
    struct Inner {
        zeta: Option<String>,
        #[serde(rename = "Alpha")]
        alpha: f32,
        mid: (u16, char),
    }

    #[derive(Debug, Clone, Serialize)]
    struct Wide {
        zz: String,
        b: u64,
        a: i64,
        f: f64,
        wide: i128,
        none: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u32>,
        at: DateTime<Utc>,
        id: uuid::Uuid,
        amount: Decimal,
        shapes: Vec<Shape>,
        by_code: HashMap<Code, Inner>,
        by_name: BTreeMap<String, Value>,
        #[serde(flatten)]
        extra: BTreeMap<String, i32>,
        unit: (),
    }

    fn arb_shape() -> impl Strategy<Value = Shape> {
        let leaf = prop_oneof![
            Just(Shape::Unit),
            any::<String>().prop_map(Shape::Newtype),
            (any::<u8>(), any::<Option<i32>>()).prop_map(|(a, b)| Shape::Tuple(a, b)),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            (any::<i64>(), 0u32..28, prop::collection::vec(inner, 0..3))
                .prop_map(|(n, s, a)| Shape::Struct { z: Decimal::new(n, s), a })
        })
    }

    fn arb_inner() -> impl Strategy<Value = Inner> {
        (any::<Option<String>>(), any::<f32>(), any::<u16>(), any::<char>()).prop_map(|(zeta, alpha, m, c)| Inner {
            zeta,
            alpha,
            mid: (m, c),
        })
    }

    prop_compose! {
        fn arb_wide()(
            zz in any::<String>(), b in any::<u64>(), a in any::<i64>(), f in any::<f64>(), wide in any::<i64>(),
            none in any::<Option<u32>>(), skipped in any::<Option<u32>>(),
            micros in -62_000_000_000_000_000i64..250_000_000_000_000_000, id in any::<u128>(),
            n in any::<i64>(), s in 0u32..28, shapes in prop::collection::vec(arb_shape(), 0..3),
            by_code in prop::collection::hash_map(prop_oneof![Just(Code::Cny), Just(Code::UsdCash)], arb_inner(), 0..2),
            by_name in prop::collection::btree_map(arb_key(), arb_json(), 0..3),
            extra in prop::collection::btree_map(arb_key(), any::<i32>(), 0..3),
        ) -> Wide {
            Wide {
                zz, b, a, f, none, skipped, at: Utc.timestamp_micros(micros).unwrap(),
                id: uuid::Uuid::from_u128(id), amount: Decimal::new(n, s), shapes, by_code, by_name,
                extra, unit: (), wide: wide.into(),
            }
        }
    }

    #[derive(Debug, Clone, Serialize)]
    #[serde(tag = "type")]
    enum Tagged {
        Recorded {
            zz: String,
            amount: Decimal,
            at: DateTime<Utc>,
            note: Option<String>,
        },
        Nothing,
        Wrapped(Inner),
        Flat {
            b: u8,
            #[serde(flatten)]
            rest: BTreeMap<String, String>,
        },
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_json_value_gives_the_old_bytes(v in arb_json()) {
            prop_assert_eq!(to_canonical_json(&v).unwrap(), canonical_json(&v));
        }

        #[test]
        fn any_struct_gives_the_old_bytes_on_the_writers_own_path(w in arb_wide()) {
            prop_assert_eq!(written(&w).unwrap(), old(&w).unwrap());
        }

        #[test]
        fn a_struct_left_to_the_old_way_gives_the_old_bytes(
            w in arb_wide(), wide in any::<i128>(), by_number in prop::collection::btree_map(any::<u32>(), any::<bool>(), 0..3),
        ) {
            #[derive(Serialize)]
            struct More {
                #[serde(flatten)]
                w: Wide,
                wider: i128,
                by_number: BTreeMap<u32, bool>,
            }
            let m = More { w, wider: wide, by_number };
            prop_assert_eq!(to_canonical_json(&m).ok(), old(&m).ok());
        }

        #[test]
        fn any_tagged_event_gives_the_old_tag_and_bytes(
            zz in any::<String>(), n in any::<i64>(), s in 0u32..28, micros in 0i64..4_000_000_000_000_000,
            note in any::<Option<String>>(), inner in arb_inner(), b in any::<u8>(),
            rest in prop::collection::btree_map(arb_key(), any::<String>(), 0..4),
        ) {
            let rest: BTreeMap<String, String> = rest.into_iter().filter(|(k, _)| k != "type" && k != "b").collect();
            let at = Utc.timestamp_micros(micros).unwrap();
            for e in [
                Tagged::Recorded { zz: zz.clone(), amount: Decimal::new(n, s), at, note: note.clone() },
                Tagged::Nothing,
                Tagged::Wrapped(inner.clone()),
                Tagged::Flat { b, rest: rest.clone() },
            ] {
                prop_assert_eq!(to_canonical_json_untagged(&e, "type").unwrap(), old_untagged(&e));
            }
        }
    }

    #[test]
    fn keys_are_sorted_by_their_bytes_and_a_repeated_key_keeps_its_last_value() {
        let v = json!({"b": 1, "a": {"z": "x", "y": [2, 1]}, "é": null, "Z": true});
        assert_eq!(to_canonical_json(&v).unwrap(), r#"{"Z":true,"a":{"y":[2,1],"z":"x"},"b":1,"é":null}"#);
        #[derive(Serialize)]
        struct Twice {
            b: u8,
            #[serde(flatten)]
            more: BTreeMap<&'static str, u8>,
        }
        let t = Twice { b: 1, more: [("b", 2), ("a", 3)].into_iter().collect() };
        assert_eq!(to_canonical_json(&t).unwrap(), old(&t).unwrap());
        assert_eq!(to_canonical_json(&t).unwrap(), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn what_the_writer_leaves_to_the_old_way_still_gives_the_old_bytes() {
        #[derive(Serialize)]
        struct Odd<'a> {
            #[serde(with = "serde_bytes_like")]
            bytes: &'a [u8],
            keys: BTreeMap<i8, f32>,
            raw: Box<serde_json::value::RawValue>,
            nan: f64,
        }
        mod serde_bytes_like {
            pub fn serialize<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b)
            }
        }
        let raw = serde_json::value::RawValue::from_string(r#"{ "y": 1, "x": [ 2 ] }"#.into()).unwrap();
        let o = Odd { bytes: &[1, 2], keys: [(-1, 0.1), (3, 2.5)].into_iter().collect(), raw, nan: f64::NAN };
        assert_eq!(to_canonical_json(&o).unwrap(), old(&o).unwrap());
        assert_eq!(to_canonical_json(&u128::MAX).is_err(), old(&u128::MAX).is_err());
    }
}
