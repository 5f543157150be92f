//! AMF0 values (the encoding of RTMP commands and metadata), decoded from untrusted bytes.
//!
//! Strings are kept as the bytes sent: names from the wire need not be UTF-8, and the report
//! must show them as they were.

use thiserror::Error;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(Vec<u8>),
    Object(Vec<(Vec<u8>, Value)>),
    Null,
    Undefined,
    Reference(u16),
    EcmaArray(Vec<(Vec<u8>, Value)>),
    StrictArray(Vec<Value>),
    Date {
        millis: f64,
        zone: i16,
    },
    LongString(Vec<u8>),
    Unsupported,
    Xml(Vec<u8>),
    TypedObject {
        class: Vec<u8>,
        props: Vec<(Vec<u8>, Value)>,
    },
    /// A value in AMF3 after the 0x11 switch marker (the simple types only are decoded).
    Amf3(Amf3),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Amf3 {
    Undefined,
    Null,
    Boolean(bool),
    Integer(i32),
    Double(f64),
    String(Vec<u8>),
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Error {
    #[error("AMF0 value cut short at byte {0}")]
    Truncated(usize),
    #[error("unknown AMF0 marker 0x{marker:02x} at byte {at}")]
    BadMarker { marker: u8, at: usize },
    #[error("AMF0 nesting deeper than {0}")]
    TooDeep(usize),
    #[error("more than {0} AMF0 values in one message")]
    TooManyValues(usize),
    #[error("AMF3 value of a type this reader does not decode at byte {0}")]
    Amf3Unsupported(usize),
}

impl Value {
    /// The value as text when it is a string (lossy for bytes that are not UTF-8).
    pub fn as_str(&self) -> Option<String> {
        match self {
            Value::String(s) | Value::LongString(s) | Value::Amf3(Amf3::String(s)) => {
                Some(String::from_utf8_lossy(s).into_owned())
            }
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(s) | Value::LongString(s) | Value::Amf3(Amf3::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) | Value::Amf3(Amf3::Double(n)) => Some(*n),
            Value::Amf3(Amf3::Integer(i)) => Some(*i as f64),
            _ => None,
        }
    }

    /// A property of an object, ECMA array or typed object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) | Value::TypedObject { props: p, .. } => p
                .iter()
                .find(|(k, _)| k.as_slice() == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A decoder over one buffer, tracking its position. It decodes at most `max_elements`
/// values in all (a decoded value takes tens of bytes for every byte of input, so a 16 MiB
/// message of one-byte nulls would otherwise take most of a gigabyte) and nests at most
/// `max_depth` deep.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
    max_elements: usize,
    elements: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], max_depth: usize, max_elements: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            max_depth,
            max_elements,
            elements: 0,
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated(self.pos))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(Error::Truncated(self.pos))?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Error> {
        let b = self.take(8)?;
        Ok(f64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn short_string(&mut self) -> Result<Vec<u8>, Error> {
        let n = self.u16()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn long_string(&mut self) -> Result<Vec<u8>, Error> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    /// Read one value.
    pub fn value(&mut self) -> Result<Value, Error> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > self.max_depth {
            return Err(Error::TooDeep(self.max_depth));
        }
        self.elements += 1;
        if self.elements > self.max_elements {
            return Err(Error::TooManyValues(self.max_elements));
        }
        let at = self.pos;
        let marker = self.u8()?;
        Ok(match marker {
            0x00 => Value::Number(self.f64()?),
            0x01 => Value::Boolean(self.u8()? != 0),
            0x02 => Value::String(self.short_string()?),
            0x03 => Value::Object(self.properties(depth)?),
            0x05 => Value::Null,
            0x06 => Value::Undefined,
            0x07 => Value::Reference(self.u16()?),
            0x08 => {
                // The count is advisory (many writers get it wrong); the end marker decides.
                let _count = self.u32()?;
                Value::EcmaArray(self.properties(depth)?)
            }
            0x0a => {
                let count = self.u32()?;
                // Each element takes at least one byte: never allocate by the count.
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value_at(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            0x0b => {
                let millis = self.f64()?;
                let zone = self.u16()? as i16;
                Value::Date { millis, zone }
            }
            0x0c => Value::LongString(self.long_string()?),
            0x0d => Value::Unsupported,
            0x0f => Value::Xml(self.long_string()?),
            0x10 => {
                let class = self.short_string()?;
                Value::TypedObject {
                    class,
                    props: self.properties(depth)?,
                }
            }
            0x11 => Value::Amf3(self.amf3()?),
            marker => return Err(Error::BadMarker { marker, at }),
        })
    }

    /// Name/value pairs up to the empty name and object-end marker.
    fn properties(&mut self, depth: usize) -> Result<Vec<(Vec<u8>, Value)>, Error> {
        let mut props = Vec::new();
        loop {
            let name = self.short_string()?;
            if name.is_empty() {
                // Some writers omit the 0x09 end marker at the very end of a message.
                if self.at_end() {
                    return Ok(props);
                }
                if self.buf[self.pos] == 0x09 {
                    self.pos += 1;
                    return Ok(props);
                }
            }
            let v = self.value_at(depth + 1)?;
            props.push((name, v));
        }
    }

    fn amf3_u29(&mut self) -> Result<u32, Error> {
        let mut v: u32 = 0;
        for i in 0..4 {
            let b = self.u8()?;
            if i == 3 {
                return Ok((v << 8) | b as u32);
            }
            v = (v << 7) | (b & 0x7f) as u32;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Ok(v)
    }

    fn amf3(&mut self) -> Result<Amf3, Error> {
        let at = self.pos;
        Ok(match self.u8()? {
            0x00 => Amf3::Undefined,
            0x01 => Amf3::Null,
            0x02 => Amf3::Boolean(false),
            0x03 => Amf3::Boolean(true),
            0x04 => {
                let v = self.amf3_u29()?;
                // Sign-extend the 29-bit integer.
                Amf3::Integer(((v << 3) as i32) >> 3)
            }
            0x05 => Amf3::Double(self.f64()?),
            0x06 => {
                let h = self.amf3_u29()?;
                if h & 1 == 0 {
                    // A reference to an earlier string: not tracked here.
                    return Err(Error::Amf3Unsupported(at));
                }
                Amf3::String(self.take((h >> 1) as usize)?.to_vec())
            }
            _ => return Err(Error::Amf3Unsupported(at)),
        })
    }
}

/// Decode every value in `buf`, stopping at the first error (the values before it are kept).
pub fn decode_all(
    buf: &[u8],
    max_depth: usize,
    max_elements: usize,
) -> (Vec<Value>, Option<Error>) {
    let mut r = Reader::new(buf, max_depth, max_elements);
    let mut out = Vec::new();
    while !r.at_end() {
        match r.value() {
            Ok(v) => out.push(v),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// Encode a value (used to write FLV script tags and by tests).
pub fn encode(v: &Value, out: &mut Vec<u8>) {
    fn short(s: &[u8], out: &mut Vec<u8>) {
        let n = s.len().min(u16::MAX as usize);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&s[..n]);
    }
    fn props(p: &[(Vec<u8>, Value)], out: &mut Vec<u8>) {
        for (k, v) in p {
            short(k, out);
            encode(v, out);
        }
        out.extend_from_slice(&[0, 0, 9]);
    }
    match v {
        Value::Number(n) => {
            out.push(0x00);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[0x01, *b as u8]),
        Value::String(s) if s.len() <= u16::MAX as usize => {
            out.push(0x02);
            short(s, out);
        }
        Value::String(s) | Value::LongString(s) => {
            out.push(0x0c);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s);
        }
        Value::Object(p) => {
            out.push(0x03);
            props(p, out);
        }
        Value::Null => out.push(0x05),
        Value::Undefined => out.push(0x06),
        Value::Reference(r) => {
            out.push(0x07);
            out.extend_from_slice(&r.to_be_bytes());
        }
        Value::EcmaArray(p) => {
            out.push(0x08);
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            props(p, out);
        }
        Value::StrictArray(items) => {
            out.push(0x0a);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for i in items {
                encode(i, out);
            }
        }
        Value::Date { millis, zone } => {
            out.push(0x0b);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&zone.to_be_bytes());
        }
        Value::Unsupported => out.push(0x0d),
        Value::Xml(s) => {
            out.push(0x0f);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s);
        }
        Value::TypedObject { class, props: p } => {
            out.push(0x10);
            short(class, out);
            props(p, out);
        }
        Value::Amf3(a) => {
            out.push(0x11);
            encode_amf3(a, out);
        }
    }
}

/// An AMF3 value after its AMF0 switch marker.
fn encode_amf3(a: &Amf3, out: &mut Vec<u8>) {
    match a {
        Amf3::Undefined => out.push(0x00),
        Amf3::Null => out.push(0x01),
        Amf3::Boolean(b) => out.push(if *b { 0x03 } else { 0x02 }),
        Amf3::Integer(i) => {
            out.push(0x04);
            let v = (*i as u32) & 0x1fff_ffff;
            if v < 0x80 {
                out.push(v as u8);
            } else if v < 0x4000 {
                out.extend_from_slice(&[(v >> 7) as u8 | 0x80, (v & 0x7f) as u8]);
            } else if v < 0x20_0000 {
                out.extend_from_slice(&[
                    (v >> 14) as u8 | 0x80,
                    ((v >> 7) & 0x7f) as u8 | 0x80,
                    (v & 0x7f) as u8,
                ]);
            } else {
                out.extend_from_slice(&[
                    (v >> 22) as u8 | 0x80,
                    ((v >> 15) & 0x7f) as u8 | 0x80,
                    ((v >> 8) & 0x7f) as u8 | 0x80,
                    v as u8,
                ]);
            }
        }
        Amf3::Double(d) => {
            out.push(0x05);
            out.extend_from_slice(&d.to_be_bytes());
        }
        Amf3::String(s) => {
            out.push(0x06);
            let h = ((s.len() as u32) << 1) | 1;
            if h < 0x80 {
                out.push(h as u8);
            } else {
                out.extend_from_slice(&[(h >> 7) as u8 | 0x80, (h & 0x7f) as u8]);
            }
            out.extend_from_slice(s);
        }
    }
}

#[cfg(test)]
mod tests;
