//! The shape of [`RawConfig`](super::RawConfig) as serde sees it: every key, nested, with the
//! kind of value it takes.
//!
//! Read once from the `Deserialize` impls themselves (a deserializer that answers every request
//! with a placeholder and writes down what was asked), so the `XIP_` variables and the check for
//! unknown keys follow the structs without a second list kept by hand.

use serde::de::value::{Error, SeqDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

/// What a key holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A single value.
    Leaf(Kind),
    /// A table of fixed keys (a Rust struct), in declaration order.
    Struct(Vec<(&'static str, Shape)>),
    /// A table of names the user chooses (`[variants.<name>]`), each holding the same shape.
    Map(Box<Shape>),
}

/// The kind of a single value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (also an enum of words, such as `fit`).
    Text,
    /// A whole number.
    Integer,
    /// A number that may have a fraction.
    Float,
    /// `true` or `false`.
    Bool,
    /// A list of text.
    List,
}

impl Shape {
    /// The shape of `T`.
    ///
    /// # Panics
    /// When `T` asks for something a configuration struct never holds (`deserialize_any`,
    /// tuples, ...): a programming error, caught by this module's tests.
    pub fn of<T: DeserializeOwned>() -> Shape {
        let mut shape = None;
        if let Err(e) = T::deserialize(Tracer { out: &mut shape }) {
            panic!("configuration shape unreadable: {e}");
        }
        shape.expect("a deserialize impl that asked for nothing")
    }

    /// The shape at `path` (keys of a [`Shape::Map`] match any name).
    #[cfg(test)]
    pub fn at(&self, path: &[&str]) -> Option<&Shape> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        match self {
            Shape::Struct(fields) => fields
                .iter()
                .find(|(name, _)| name == first)
                .and_then(|(_, shape)| shape.at(rest)),
            Shape::Map(entry) => entry.at(rest),
            Shape::Leaf(_) => None,
        }
    }
}

/// A deserializer that records the shape asked for into `out` and hands back placeholders.
struct Tracer<'a> {
    out: &'a mut Option<Shape>,
}

impl Tracer<'_> {
    fn leaf(self, kind: Kind) {
        *self.out = Some(Shape::Leaf(kind));
    }
}

macro_rules! leaf {
    ($($method:ident => $kind:ident, $visit:ident($value:expr);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf(Kind::$kind);
            visitor.$visit($value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom("a key of no fixed kind"))
    }

    leaf! {
        deserialize_bool => Bool, visit_bool(false);
        deserialize_i8 => Integer, visit_i64(1);
        deserialize_i16 => Integer, visit_i64(1);
        deserialize_i32 => Integer, visit_i64(1);
        deserialize_i64 => Integer, visit_i64(1);
        deserialize_u8 => Integer, visit_u64(1);
        deserialize_u16 => Integer, visit_u64(1);
        deserialize_u32 => Integer, visit_u64(1);
        deserialize_u64 => Integer, visit_u64(1);
        deserialize_f32 => Float, visit_f64(1.0);
        deserialize_f64 => Float, visit_f64(1.0);
        deserialize_char => Text, visit_char('x');
        deserialize_str => Text, visit_str("");
        deserialize_string => Text, visit_str("");
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.leaf(Kind::List);
        visitor.visit_seq(SeqDeserializer::<_, Error>::new(std::iter::empty::<&str>()))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let mut entry = None;
        let value = visitor.visit_map(Fields {
            names: &["*"],
            shapes: std::slice::from_mut(&mut entry),
            next: 0,
        })?;
        *self.out = Some(Shape::Map(Box::new(entry.ok_or_else(|| {
            de::Error::custom("a table whose entries asked for nothing")
        })?)));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut shapes = vec![None; fields.len()];
        let value = visitor.visit_map(Fields {
            names: fields,
            shapes: &mut shapes,
            next: 0,
        })?;
        let fields = fields
            .iter()
            .zip(shapes)
            .map(|(name, shape)| Ok((*name, shape.ok_or_else(|| de::Error::missing_field(name))?)))
            .collect::<Result<_, Error>>()?;
        *self.out = Some(Shape::Struct(fields));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.leaf(Kind::Text);
        let first: StrDeserializer<'_, Error> = variants[0].into_deserializer();
        visitor.visit_enum(first)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct newtype_struct tuple tuple_struct identifier
        ignored_any
    }
}

/// Hands each of `names` to a struct's (or map's) visitor, tracing its value into `shapes`.
struct Fields<'a> {
    names: &'static [&'static str],
    shapes: &'a mut [Option<Shape>],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(name) = self.names.get(self.next) else {
            return Ok(None);
        };
        let key: StrDeserializer<'_, Error> = name.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let out = &mut self.shapes[self.next];
        self.next += 1;
        seed.deserialize(Tracer { out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    #[test]
    fn reads_nested_tables_maps_options_and_enums() {
        let shape = Shape::of::<RawConfig>();
        let kind = |path: &[&str]| shape.at(path).cloned();
        assert_eq!(kind(&["listen"]), Some(Shape::Leaf(Kind::Text)));
        assert_eq!(
            kind(&["worker", "concurrency"]),
            Some(Shape::Leaf(Kind::Integer))
        );
        assert_eq!(
            kind(&["worker", "job_timeout_secs"]),
            Some(Shape::Leaf(Kind::Float))
        );
        assert_eq!(kind(&["allowed_mime_types"]), Some(Shape::Leaf(Kind::List)));
        assert_eq!(
            kind(&["variants", "md", "fit"]),
            Some(Shape::Leaf(Kind::Text))
        );
        assert_eq!(
            kind(&["moderation", "http", "bearer_token"]),
            Some(Shape::Leaf(Kind::Text))
        );
        assert_eq!(kind(&["s3", "path_style"]), Some(Shape::Leaf(Kind::Bool)));
        assert!(matches!(kind(&["variants"]), Some(Shape::Map(_))));
        assert_eq!(kind(&["worker", "nope"]), None);
    }
}
