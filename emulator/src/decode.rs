//! Request body decoding: JSON that reports duplicate fields (for `fieldValidation`) and YAML.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::protobuf::ProtobufError;

struct Tracked<'a> {
    path: String,
    duplicates: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Tracked<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tracked<'_> {
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
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
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
            let seed = Tracked {
                path: format!("{}[{}]", self.path, out.len()),
                duplicates: &mut *self.duplicates,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let seed = Tracked {
                path: path.clone(),
                duplicates: &mut *self.duplicates,
            };
            let v = map.next_value_seed(seed)?;
            if out.insert(key, v).is_some() {
                self.duplicates.push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

/// A decoded body and the paths of fields that appeared more than once.
pub struct Body {
    pub value: Value,
    pub duplicates: Vec<String>,
}

/// Parses JSON, keeping the last of duplicate fields and reporting their paths.
pub fn json(bytes: &[u8]) -> Result<Body, serde_json::Error> {
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Tracked {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(Body { value, duplicates })
}

/// Parses a request body by content type (JSON, YAML for `*yaml` types, or protobuf for
/// the kinds [`crate::protobuf`] knows).
pub fn body(bytes: &[u8], content_type: &str) -> Result<Body, ApiError> {
    // The serializers the real server decodes bodies with; anything else is 415.
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.is_empty()
        && !matches!(
            media,
            "application/json" | "application/yaml" | "application/vnd.kubernetes.protobuf"
        )
    {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf",
        ));
    }
    if content_type.contains("yaml") {
        // JSON is YAML: try the stricter parser first so duplicates are reported.
        if let Ok(b) = json(bytes) {
            return Ok(b);
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
        let value: Value = serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        return Ok(Body {
            value,
            duplicates: Vec::new(),
        });
    }
    if content_type.contains("protobuf") {
        let value = crate::protobuf::decode(bytes).map_err(|e| match e {
            ProtobufError::Unsupported { .. } => {
                ApiError::new(415, "UnsupportedMediaType", e.to_string())
            }
            other => ApiError::bad_request(other.to_string()),
        })?;
        return Ok(Body {
            value,
            duplicates: Vec::new(),
        });
    }
    json(bytes).map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_reported_with_paths() {
        let b = json(br#"{"spec": {"a": 1, "a": 2}, "list": [{"x": 1, "x": 1}]}"#).unwrap();
        assert_eq!(b.value["spec"]["a"], 2);
        assert_eq!(
            b.duplicates,
            vec!["spec.a".to_string(), "list[0].x".to_string()]
        );
    }
}
