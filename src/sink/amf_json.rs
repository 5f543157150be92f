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

/// Bytes of JSON text a stream's metadata may take in the report (an encoder's onMetaData is
/// well under 4 KiB; one made to fill the report is cut here).
pub const MAX_METADATA_JSON: usize = 64 << 10;
/// Bytes kept of each text in the metadata (as [`crate::config::Limits::text_bytes`]'s default).
pub const MAX_METADATA_TEXT: usize = 4096;

/// [`to_json`] within a budget: each text is cut to `text_bytes` bytes, and once `budget` bytes
/// of JSON text are spent no further entries are added. Returns the value and whether
/// anything was left out.
pub fn to_json_bounded(v: &Value, text_bytes: usize, budget: usize) -> (serde_json::Value, bool) {
    let mut left = budget;
    let mut cut = false;
    let j = bounded(v, text_bytes, &mut left, &mut cut, 0);
    (j, cut)
}

fn bounded(
    v: &Value,
    text_bytes: usize,
    left: &mut usize,
    cut: &mut bool,
    depth: usize,
) -> serde_json::Value {
    use serde_json::Value as J;
    let text = |b: &[u8], left: &mut usize, cut: &mut bool| {
        let keep = &b[..b.len().min(text_bytes)];
        *cut |= keep.len() < b.len();
        let s = escape(keep);
        *left = left.saturating_sub(s.len() + 2);
        s
    };
    // Scalars cost a few bytes each; containers the sum of what they hold.
    *left = left.saturating_sub(8);
    match v {
        Value::String(s) | Value::LongString(s) | Value::Xml(s) | Value::Amf3(Amf3::String(s)) => {
            J::String(text(s, left, cut))
        }
        Value::Object(p) | Value::EcmaArray(p) | Value::TypedObject { props: p, .. } => {
            let mut m = serde_json::Map::new();
            for (k, v) in p {
                if *left == 0 || depth >= 16 {
                    *cut = true;
                    break;
                }
                let k = text(k, left, cut);
                let v = bounded(v, text_bytes, left, cut, depth + 1);
                m.insert(k, v);
            }
            J::Object(m)
        }
        Value::StrictArray(items) => {
            let mut a = Vec::new();
            for v in items {
                if *left == 0 || depth >= 16 {
                    *cut = true;
                    break;
                }
                a.push(bounded(v, text_bytes, left, cut, depth + 1));
            }
            J::Array(a)
        }
        other => to_json(other),
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
        assert_eq!(to_json_bounded(&v, 4096, MAX_METADATA_JSON), (j, false));
    }

    #[test]
    fn metadata_made_to_fill_the_report_is_cut() {
        let big = vec![b'x'; 100_000];
        let v = Value::EcmaArray(
            (0..2000)
                .map(|i| (format!("k{i}").into_bytes(), Value::LongString(big.clone())))
                .collect(),
        );
        let (j, cut) = to_json_bounded(&v, 4096, MAX_METADATA_JSON);
        assert!(cut);
        let text = j.to_string();
        assert!(
            text.len() <= MAX_METADATA_JSON + 4096 * 4 + 64,
            "{}",
            text.len()
        );
        assert_eq!(j["k0"].as_str().unwrap().len(), 4096);
        // Deep nesting is cut too, never recursed into without end.
        let mut deep = Value::Number(1.0);
        for _ in 0..100 {
            deep = Value::StrictArray(vec![deep]);
        }
        let (_, cut) = to_json_bounded(&deep, 4096, MAX_METADATA_JSON);
        assert!(cut);
    }
}
