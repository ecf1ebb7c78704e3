//! JSON decoding that notices duplicate object keys. serde_json keeps the
//! last of duplicated keys silently; upstream's strict decoder reports each
//! one (`fieldValidation=Strict` refuses them, `Warn` warns), so request
//! bodies are decoded here with the path of every duplicate recorded.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Decodes `bytes`, returning the value (last duplicate wins, as serde_json
/// and Go do) and the paths of duplicated fields ("metadata.name", "spec.ports[0].port").
pub fn from_slice_with_duplicates(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut dups = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Seed { path: String::new(), dups: &mut dups }.deserialize(&mut de)?;
    de.end()?;
    Ok((v, dups))
}

struct Seed<'a> {
    path: String,
    dups: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, out.len());
            match seq.next_element_seed(Seed { path, dups: &mut *self.dups })? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { k.clone() } else { format!("{}.{k}", self.path) };
            if out.contains_key(&k) {
                self.dups.push(path.clone());
            }
            let v = map.next_value_seed(Seed { path, dups: &mut *self.dups })?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicates_at_every_depth() {
        let (v, d) = from_slice_with_duplicates(br#"{"a":1,"b":{"c":1,"c":2},"l":[{"x":1,"x":3}],"a":2}"#).unwrap();
        assert_eq!(d, ["b.c", "l[0].x", "a"]);
        assert_eq!(v, serde_json::json!({"a": 2, "b": {"c": 2}, "l": [{"x": 3}]}));
        let (_, none) = from_slice_with_duplicates(br#"{"a":[1,1],"b":{"a":1}}"#).unwrap();
        assert!(none.is_empty());
        assert!(from_slice_with_duplicates(b"{\"a\":").is_err());
        assert!(from_slice_with_duplicates(b"{} x").is_err());
    }
}
