//! AMF0 values as JSON, for the report.

use crate::rtmp::amf0::{Amf3, Value};
use crate::sink::naming::escape;

/// The value as JSON, for the report: text that is not UTF-8 or holds control characters is
/// escaped (`\xNN`), numbers that JSON cannot hold (NaN, infinities) become null.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    let text = |b: &[u8]| J::String(escape(b));
    let map = |p: &[(Vec<u8>, Value)]| {
        J::Object(p.iter().map(|(k, v)| (escape(k), to_json(v))).collect())
    };
    match v {
        Value::Number(n) | Value::Amf3(Amf3::Double(n)) => {
            serde_json::Number::from_f64(*n).map_or(J::Null, J::Number)
        }
        Value::Amf3(Amf3::Integer(i)) => J::from(*i),
        Value::Boolean(b) | Value::Amf3(Amf3::Boolean(b)) => J::Bool(*b),
        Value::String(s) | Value::LongString(s) | Value::Xml(s) | Value::Amf3(Amf3::String(s)) => {
            text(s)
        }
        Value::Object(p) | Value::EcmaArray(p) | Value::TypedObject { props: p, .. } => map(p),
        Value::StrictArray(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Date { millis, .. } => {
            serde_json::Number::from_f64(*millis).map_or(J::Null, J::Number)
        }
        Value::Null | Value::Undefined | Value::Unsupported | Value::Reference(_) => J::Null,
        Value::Amf3(Amf3::Null | Amf3::Undefined) => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_to_json() {
        let v = Value::EcmaArray(vec![
            (b"width".to_vec(), Value::Number(320.0)),
            (b"encoder".to_vec(), Value::String(b"Lavf\x00x".to_vec())),
            (b"nan".to_vec(), Value::Number(f64::NAN)),
        ]);
        let j = to_json(&v);
        assert_eq!(j["width"], 320.0);
        assert_eq!(j["encoder"], "Lavf\\x00x");
        assert!(j["nan"].is_null());
    }
}
