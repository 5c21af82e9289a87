//! The subset of CBOR (RFC 8949) that the ACME attestation object uses: integers, byte and
//! text strings, arrays and maps with definite lengths. The encoder writes the shortest
//! head for every item; the decoder refuses indefinite lengths, tags, floats, nesting deeper
//! than a few levels and lengths beyond the input.

use crate::error::Result;

use super::evidence;

/// Attestation objects nest three levels deep (map, attStmt map, x5c array).
const MAX_DEPTH: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// Any integer CBOR can hold in major types 0 and 1 (-2^64 .. 2^64-1).
    Int(i128),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    /// Pairs in the order written.
    Map(Vec<(Value, Value)>),
}

impl Value {
    pub fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    /// The value of text key `key` in a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) if *i >= 0 => head(out, 0, u64::try_from(*i).unwrap_or(u64::MAX)),
            Value::Int(i) => head(out, 1, u64::try_from(-1 - *i).unwrap_or(u64::MAX)),
            Value::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Value::Array(items) => {
                head(out, 4, items.len() as u64);
                for v in items {
                    v.write(out);
                }
            }
            Value::Map(pairs) => {
                head(out, 5, pairs.len() as u64);
                for (k, v) in pairs {
                    k.write(out);
                    v.write(out);
                }
            }
        }
    }

    /// Decodes exactly one item filling `data`.
    pub fn decode(data: &[u8]) -> Result<Value> {
        let mut rest = data;
        let v = read(&mut rest, 0)?;
        if !rest.is_empty() {
            return Err(evidence(format!(
                "CBOR: {} bytes after the first item",
                rest.len()
            )));
        }
        Ok(v)
    }
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    let Some((first, tail)) = rest.split_at_checked(n) else {
        return Err(evidence(format!(
            "CBOR is truncated: an item needs {n} bytes, {} left",
            rest.len()
        )));
    };
    *rest = tail;
    Ok(first)
}

/// Reads a head: (major type, argument).
fn read_head(rest: &mut &[u8]) -> Result<(u8, u64)> {
    let b = take(rest, 1)?[0];
    let (major, info) = (b >> 5, b & 0x1f);
    let n = match info {
        0..=23 => u64::from(info),
        24 => u64::from(take(rest, 1)?[0]),
        25 => take(rest, 2)?
            .iter()
            .fold(0, |a, &b| (a << 8) | u64::from(b)),
        26 => take(rest, 4)?
            .iter()
            .fold(0, |a, &b| (a << 8) | u64::from(b)),
        27 => take(rest, 8)?
            .iter()
            .fold(0, |a, &b| (a << 8) | u64::from(b)),
        31 => return Err(evidence("CBOR: indefinite lengths are not accepted")),
        _ => return Err(evidence(format!("CBOR: reserved additional info {info}"))),
    };
    Ok((major, n))
}

/// A length that must fit the remaining input (each item takes at least one byte).
fn length(n: u64, rest: &[u8]) -> Result<usize> {
    usize::try_from(n)
        .ok()
        .filter(|&l| l <= rest.len())
        .ok_or_else(|| {
            evidence(format!(
                "CBOR is truncated: a length of {n} with {} bytes left",
                rest.len()
            ))
        })
}

fn read(rest: &mut &[u8], depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(evidence("CBOR nests too deeply"));
    }
    let (major, n) = read_head(rest)?;
    match major {
        0 => Ok(Value::Int(i128::from(n))),
        1 => Ok(Value::Int(-1 - i128::from(n))),
        2 => {
            let len = length(n, rest)?;
            Ok(Value::Bytes(take(rest, len)?.to_vec()))
        }
        3 => {
            let len = length(n, rest)?;
            let bytes = take(rest, len)?;
            String::from_utf8(bytes.to_vec())
                .map(Value::Text)
                .map_err(|_| evidence("CBOR text string is not UTF-8"))
        }
        4 => {
            let count = length(n, rest)?;
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(read(rest, depth + 1)?);
            }
            Ok(Value::Array(items))
        }
        5 => {
            // Each pair takes at least two bytes.
            let count = length(n.saturating_mul(2), rest)? / 2;
            let mut pairs = Vec::with_capacity(count);
            for _ in 0..count {
                let k = read(rest, depth + 1)?;
                let v = read(rest, depth + 1)?;
                pairs.push((k, v));
            }
            Ok(Value::Map(pairs))
        }
        6 => Err(evidence("CBOR tags are not accepted here")),
        _ => Err(evidence(
            "CBOR floats and simple values are not accepted here",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8949_vectors() {
        for (v, hex) in [
            (Value::Int(0), "00"),
            (Value::Int(23), "17"),
            (Value::Int(24), "1818"),
            (Value::Int(1000), "1903e8"),
            (Value::Int(1_000_000), "1a000f4240"),
            (Value::Int(1_000_000_000_000), "1b000000e8d4a51000"),
            (Value::Int(-1), "20"),
            (Value::Int(-7), "26"),
            (Value::Int(-257), "390100"),
            (Value::Int(-65535), "39fffe"),
            (Value::Bytes(vec![1, 2, 3, 4]), "4401020304"),
            (Value::text("IETF"), "6449455446"),
            (Value::Array(vec![Value::Int(1), Value::Int(2)]), "820102"),
            (
                Value::Map(vec![(Value::text("a"), Value::Int(1))]),
                "a1616101",
            ),
        ] {
            let enc: String = v.encode().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(enc, hex, "{v:?}");
            assert_eq!(Value::decode(&v.encode()).unwrap(), v);
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [
            &[][..],
            &[0x44, 1, 2],
            &[0x5f],
            &[0xc0, 0],
            &[0xf9, 0, 0],
            &[0x1b, 0, 0],
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x62, 0xff, 0xfe],
            &[0x00, 0x00],
        ] {
            assert!(Value::decode(bad).is_err(), "{bad:?}");
        }
        let deep = [vec![0x81u8; 100], vec![0]].concat();
        assert!(Value::decode(&deep).is_err());
    }
}
