//! Decoding only some paths of a JSON object: what a field selector reads
//! of a stored object, without building the rest of it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The object in `json` with only the values at `paths` (dotted paths of
/// object keys); everything else is skipped. A path that ends at an object
/// or a list keeps that value whole.
pub fn decode_paths(json: &[u8], paths: &[&str]) -> Option<Value> {
    let split: Vec<Vec<&str>> = paths.iter().map(|p| p.split('.').collect()).collect();
    let seed = Paths(split.iter().map(Vec::as_slice).collect());
    let mut de = serde_json::Deserializer::from_slice(json);
    seed.deserialize(&mut de).ok()
}

/// The remaining steps of every wanted path below the current value.
struct Paths<'p>(Vec<&'p [&'p str]>);

impl<'de> DeserializeSeed<'de> for Paths<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.0.iter().any(|p| p.is_empty()) {
            return serde::Deserialize::deserialize(d);
        }
        d.deserialize_any(self)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Paths<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(k)) = map.next_key::<Key>()? {
            let below: Vec<&[&str]> = self.0.iter().filter(|p| p[0] == k).map(|p| &p[1..]).collect();
            if below.is_empty() {
                map.next_value::<IgnoredAny>()?;
            } else {
                out.insert(k.into_owned(), map.next_value_seed(Paths(below))?);
            }
        }
        Ok(Value::Object(out))
    }

    // A path that runs into a list or a scalar finds nothing below it.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_the_wanted_paths() {
        let obj = json!({"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"nodeName": "n1", "containers": [{"name": "c"}], "hostNetwork": true},
                         "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}, "esc\\aped": 1});
        let bytes = serde_json::to_vec(&obj).unwrap();
        let got = decode_paths(&bytes, &["spec.nodeName", "spec.hostNetwork", "status.podIPs", "status.missing", "metadata.name.deeper"]).unwrap();
        assert_eq!(got, json!({"metadata": {"name": null}, "spec": {"nodeName": "n1", "hostNetwork": true}, "status": {"podIPs": [{"ip": "10.0.0.1"}]}}));
        assert_eq!(decode_paths(b"{\"a\": {\"b\\u0041\": 1}}", &["a.bA"]).unwrap(), json!({"a": {"bA": 1}}));
        assert_eq!(decode_paths(b"not json", &["a"]), None);
    }
}
