use super::*;
use proptest::prelude::*;

fn s(x: &str) -> Vec<u8> {
    x.as_bytes().to_vec()
}

fn round_trip(v: &Value) {
    let mut b = Vec::new();
    encode(v, &mut b);
    let mut r = Reader::new(&b, 32, 1000);
    assert_eq!(&r.value().unwrap(), v);
    assert!(r.at_end());
}

#[test]
fn every_marker_round_trips() {
    let obj = vec![
        (s("app"), Value::String(s("live"))),
        (s("n"), Value::Number(1.5)),
    ];
    for v in [
        Value::Number(-3.25),
        Value::Boolean(true),
        Value::String(s("cam1")),
        Value::Object(obj.clone()),
        Value::Null,
        Value::Undefined,
        Value::Reference(7),
        Value::EcmaArray(obj.clone()),
        Value::StrictArray(vec![Value::Null, Value::Number(2.0)]),
        Value::Date {
            millis: 1e12,
            zone: -60,
        },
        Value::LongString(vec![b'x'; 70_000]),
        Value::Unsupported,
        Value::Xml(s("<a/>")),
        Value::TypedObject {
            class: s("C"),
            props: obj,
        },
        Value::Amf3(Amf3::Integer(-5)),
        Value::Amf3(Amf3::Integer(300_000)),
        Value::Amf3(Amf3::String(s("hi"))),
        Value::Amf3(Amf3::Double(2.5)),
        Value::Amf3(Amf3::Boolean(true)),
    ] {
        round_trip(&v);
    }
}

#[test]
fn connect_command_decodes() {
    let mut b = Vec::new();
    encode(&Value::String(s("connect")), &mut b);
    encode(&Value::Number(1.0), &mut b);
    encode(
        &Value::Object(vec![(s("app"), Value::String(s("live")))]),
        &mut b,
    );
    let (vals, err) = decode_all(&b, 32, 1000);
    assert!(err.is_none());
    assert_eq!(vals[0].as_str().unwrap(), "connect");
    assert_eq!(vals[2].get("app").unwrap().as_str().unwrap(), "live");
}

#[test]
fn hostile_inputs_fail_cleanly() {
    // A strict array claiming four billion elements.
    assert!(
        Reader::new(&[0x0a, 0xff, 0xff, 0xff, 0xff], 32, 1000)
            .value()
            .is_err()
    );
    // Deep nesting.
    let deep = [0x0a, 0, 0, 0, 1].repeat(100);
    assert_eq!(
        Reader::new(&deep, 32, 1000).value(),
        Err(Error::TooDeep(32))
    );
    // A long string longer than the buffer.
    assert!(
        Reader::new(&[0x0c, 0x7f, 0, 0, 0, b'a'], 32, 1000)
            .value()
            .is_err()
    );
    assert!(matches!(
        Reader::new(&[0x42], 32, 1000).value(),
        Err(Error::BadMarker { marker: 0x42, .. })
    ));
    // A strict array of a million nulls: stopped at the element limit, not decoded.
    let mut many = vec![0x0a, 0, 0x0f, 0x42, 0x40];
    many.resize(many.len() + 1_000_000, 0x05);
    assert_eq!(
        Reader::new(&many, 32, 65_536).value(),
        Err(Error::TooManyValues(65_536))
    );
    // Nor an object of many properties.
    let mut props = vec![0x03];
    for _ in 0..100_000 {
        props.extend_from_slice(&[0, 1, b'k', 0x05]);
    }
    assert_eq!(
        Reader::new(&props, 32, 65_536).value(),
        Err(Error::TooManyValues(65_536))
    );
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(|n| Value::Number(n as f64)),
        any::<bool>().prop_map(Value::Boolean),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::String),
        Just(Value::Null),
        Just(Value::Undefined),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(
                (proptest::collection::vec(1u8..255, 1..8), inner.clone()),
                0..5
            )
            .prop_map(Value::Object),
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::StrictArray),
            proptest::collection::vec((proptest::collection::vec(1u8..255, 1..8), inner), 0..5)
                .prop_map(Value::EcmaArray),
        ]
    })
}

proptest! {
    #[test]
    fn random_values_round_trip(v in arb_value()) {
        round_trip(&v);
    }

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_all(&b, 32, 1000);
    }
}
