//! A small DER reader and writer: just the ASN.1 that the TSS2 PRIVATE KEY format needs.
//!
//! The reader is lenient where real key files need it (non-minimal lengths and integers, any
//! non-zero BOOLEAN), rejects what no encoder should produce (indefinite lengths, multi-byte
//! tags, lengths that overflow), and never panics: every access is checked and every failure
//! is an `Error::KeyFile` naming the element being read. The writer produces strict DER.

use crate::error::{Error, Result};

pub const TAG_BOOLEAN: u8 = 0x01;
pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_NULL: u8 = 0x05;
pub const TAG_OID: u8 = 0x06;
pub const TAG_UTF8_STRING: u8 = 0x0C;
pub const TAG_SEQUENCE: u8 = 0x30;

/// Class and constructed bits of an EXPLICIT context-specific tag `[n]`.
pub const CONTEXT_CONSTRUCTED: u8 = 0xA0;

/// The tag byte of `[n] EXPLICIT` (context-specific, constructed), for n < 31.
pub const fn tag_explicit(n: u8) -> u8 {
    CONTEXT_CONSTRUCTED | (n & 0x1F)
}

pub fn malformed(msg: impl Into<String>) -> Error {
    Error::KeyFile(msg.into())
}

/// A readable name for a tag byte, for error messages.
pub fn tag_name(tag: u8) -> String {
    let universal = match tag {
        0x01 => Some("BOOLEAN"),
        0x02 => Some("INTEGER"),
        0x03 => Some("BIT STRING"),
        0x04 => Some("OCTET STRING"),
        0x05 => Some("NULL"),
        0x06 => Some("OBJECT IDENTIFIER"),
        0x0C => Some("UTF8String"),
        0x13 => Some("PrintableString"),
        0x30 => Some("SEQUENCE"),
        0x31 => Some("SET"),
        _ => None,
    };
    if let Some(name) = universal {
        return format!("{name} (tag 0x{tag:02x})");
    }
    let number = tag & 0x1F;
    let constructed = if tag & 0x20 != 0 {
        "constructed"
    } else {
        "primitive"
    };
    match tag >> 6 {
        2 if number != 0x1F => format!("[{number}] {constructed} (tag 0x{tag:02x})"),
        _ => format!("tag 0x{tag:02x}"),
    }
}

/// Reads DER elements one after the other from a byte slice.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The tag byte of the next element, if any byte is left.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next element, whatever its tag: returns (tag, content).
    pub fn read_any(&mut self, what: &str) -> Result<(u8, &'a [u8])> {
        let Some((&tag, after_tag)) = self.rest.split_first() else {
            return Err(malformed(format!(
                "truncated: expected {what}, no bytes left"
            )));
        };
        if tag & 0x1F == 0x1F {
            return Err(malformed(format!(
                "{what}: multi-byte tag (0x{tag:02x} ...) is not used by this format"
            )));
        }
        let Some((&first, after_first)) = after_tag.split_first() else {
            return Err(malformed(format!("truncated: {what} has no length byte")));
        };
        let (len, after_len) = match first {
            0..=0x7F => (usize::from(first), after_first),
            0x80 => {
                return Err(malformed(format!(
                    "{what}: indefinite length (BER) is not allowed, DER needs a definite length"
                )))
            }
            0xFF => return Err(malformed(format!("{what}: reserved length byte 0xff"))),
            _ => {
                let count = usize::from(first & 0x7F);
                let Some((len_bytes, rest)) = after_first.split_at_checked(count) else {
                    return Err(malformed(format!(
                        "truncated: length of {what} needs {count} bytes, {} left",
                        after_first.len()
                    )));
                };
                let mut len: usize = 0;
                for &b in len_bytes {
                    len = len
                        .checked_mul(256)
                        .and_then(|l| l.checked_add(usize::from(b)))
                        .ok_or_else(|| {
                            malformed(format!("{what}: length overflows ({count} length bytes)"))
                        })?;
                }
                (len, rest)
            }
        };
        let Some((content, rest)) = after_len.split_at_checked(len) else {
            return Err(malformed(format!(
                "truncated: {what} needs {len} bytes, {} left",
                after_len.len()
            )));
        };
        self.rest = rest;
        Ok((tag, content))
    }

    /// Reads the next element, which must have tag `expected`: returns its content.
    pub fn read(&mut self, expected: u8, what: &str) -> Result<&'a [u8]> {
        match self.peek_tag() {
            None => Err(malformed(format!(
                "truncated: expected {what}, no bytes left"
            ))),
            Some(tag) if tag != expected => Err(malformed(format!(
                "expected {what}, a {}, found {}",
                tag_name(expected),
                tag_name(tag)
            ))),
            Some(_) => self.read_any(what).map(|(_, content)| content),
        }
    }

    /// Fails unless every byte has been read; `inside` names the enclosing element.
    pub fn finish(&self, inside: &str) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(format!(
                "{} unexpected bytes at the end of {inside}",
                self.rest.len()
            )))
        }
    }
}

/// Reads the content of an element that must hold exactly one element of tag `expected`,
/// as in `[n] EXPLICIT T`: returns the inner content.
pub fn read_single(content: &[u8], expected: u8, outer: &str, inner: &str) -> Result<Vec<u8>> {
    let mut r = Reader::new(content);
    let value = r.read(expected, inner)?;
    r.finish(outer)?;
    Ok(value.to_vec())
}

/// A BOOLEAN read leniently: any non-zero byte is TRUE (DER wants 0xFF, some writers use 0x01).
pub fn decode_bool(content: &[u8], what: &str) -> Result<bool> {
    match content {
        [b] => Ok(*b != 0),
        _ => Err(malformed(format!(
            "{what} must be 1 byte long, it is {} bytes",
            content.len()
        ))),
    }
}

/// An INTEGER read leniently as a 32-bit value: redundant leading bytes are accepted, and a
/// negative value (as old writers produced for handles such as 0x81000001) is taken as its
/// 32-bit two's complement. Values outside -2^31 ..= 2^32-1 are refused.
pub fn decode_u32(content: &[u8], what: &str) -> Result<u32> {
    let Some(&first) = content.first() else {
        return Err(malformed(format!(
            "{what} is empty (an INTEGER needs at least 1 byte)"
        )));
    };
    let negative = first & 0x80 != 0;
    let fill = if negative { 0xFF } else { 0x00 };
    // Drop sign-extension bytes that change nothing: 00 00 05 is 5, FF FF 80 is -128.
    let mut digits = content;
    while let [a, b, ..] = digits {
        if *a == fill && (*b & 0x80 != 0) == negative {
            digits = digits.get(1..).unwrap_or_default();
        } else {
            break;
        }
    }
    let too_big = || {
        malformed(format!(
            "{what} does not fit in 32 bits (0x{})",
            hex_prefix(content, 16)
        ))
    };
    if digits.len() > 5 {
        return Err(too_big());
    }
    let mut value: i64 = if negative { -1 } else { 0 };
    for &b in digits {
        value = (value << 8) | i64::from(b);
    }
    if value < i64::from(i32::MIN) || value > i64::from(u32::MAX) {
        return Err(too_big());
    }
    // Truncation to the low 32 bits is the intent: -0x3fffffff becomes 0xc0000001.
    Ok(value as u32)
}

/// The content octets of a strict DER INTEGER holding `value` (non-negative).
pub fn encode_u32(value: u32) -> Vec<u8> {
    encode_unsigned(&value.to_be_bytes())
}

/// The content octets of a strict DER INTEGER holding the non-negative big-endian `magnitude`
/// (leading zeros dropped, a 0x00 added when the first bit is set).
pub fn encode_unsigned(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude.iter().take_while(|&&b| b == 0).count();
    let significant = magnitude.get(start..).unwrap_or_default();
    let mut out = Vec::with_capacity(significant.len() + 1);
    if significant.first().is_none_or(|&b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(significant);
    out
}

/// The magnitude of a non-negative INTEGER's content octets, without leading zero bytes;
/// a negative or empty INTEGER is refused.
pub fn decode_unsigned<'a>(content: &'a [u8], what: &str) -> Result<&'a [u8]> {
    match content.first() {
        None => Err(malformed(format!("{what} is empty"))),
        Some(b) if b & 0x80 != 0 => Err(malformed(format!("{what} is negative"))),
        Some(_) => {
            let start = content.iter().take_while(|&&b| b == 0).count();
            Ok(content.get(start..).unwrap_or_default())
        }
    }
}

/// The dotted form of an OBJECT IDENTIFIER's content octets, or None if they are malformed.
pub fn oid_to_string(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut in_arc = false;
    for &b in content {
        if !in_arc && b == 0x80 {
            return None; // non-minimal sub-identifier
        }
        value = value.checked_mul(128)?.checked_add(u64::from(b & 0x7F))?;
        in_arc = b & 0x80 != 0;
        if !in_arc {
            arcs.push(value);
            value = 0;
        }
    }
    if in_arc {
        return None;
    }
    let (&first, rest) = arcs.split_first()?;
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut s = format!("{a}.{b}");
    for arc in rest {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Some(s)
}

/// At most `max` bytes of `data` in hex, with "..." when cut.
pub fn hex_prefix(data: &[u8], max: usize) -> String {
    let mut s: String = data.iter().take(max).map(|b| format!("{b:02x}")).collect();
    if data.len() > max {
        s.push_str("...");
    }
    s
}

/// Appends a strict DER length.
fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let start = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    let significant = bytes.get(start..).unwrap_or(&bytes);
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// Appends one element: tag, minimal length, content.
pub fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    write_len(out, content.len());
    out.extend_from_slice(content);
}

/// One element as a new vector.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    write_tlv(&mut out, tag, content);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn msg(e: Error) -> String {
        match e {
            Error::KeyFile(m) => m,
            other => panic!("expected Error::KeyFile, got {other:?}"),
        }
    }

    #[test]
    fn lengths_short_long_and_minimal() {
        for (len, head) in [
            (0usize, vec![0x04, 0x00]),
            (127, vec![0x04, 0x7F]),
            (128, vec![0x04, 0x81, 0x80]),
            (255, vec![0x04, 0x81, 0xFF]),
            (256, vec![0x04, 0x82, 0x01, 0x00]),
            (70000, vec![0x04, 0x83, 0x01, 0x11, 0x70]),
        ] {
            let content = vec![0xAB; len];
            let enc = tlv(TAG_OCTET_STRING, &content);
            assert_eq!(enc.get(..head.len()).unwrap(), &head[..], "length {len}");
            assert_eq!(enc.len(), head.len() + len);
            let mut r = Reader::new(&enc);
            assert_eq!(r.read(TAG_OCTET_STRING, "x").unwrap(), &content[..]);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn non_minimal_length_is_read() {
        let mut r = Reader::new(&[0x04, 0x82, 0x00, 0x02, 0xAA, 0xBB]);
        assert_eq!(r.read(TAG_OCTET_STRING, "x").unwrap(), &[0xAA, 0xBB]);
    }

    #[test]
    fn bad_lengths() {
        let m = msg(Reader::new(&[0x30, 0x80, 0x00, 0x00])
            .read_any("thing")
            .unwrap_err());
        assert!(m.contains("indefinite"), "{m}");
        let m = msg(Reader::new(&[0x30, 0xFF]).read_any("thing").unwrap_err());
        assert!(m.contains("reserved"), "{m}");
        let mut long = vec![0x30, 0x89];
        long.extend_from_slice(&[0xFF; 9]);
        let m = msg(Reader::new(&long).read_any("thing").unwrap_err());
        assert!(m.contains("overflows"), "{m}");
        let m = msg(Reader::new(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF])
            .read_any("thing")
            .unwrap_err());
        assert_eq!(m, "truncated: thing needs 4294967295 bytes, 0 left");
        let m = msg(Reader::new(&[0x30, 0x83, 0x01])
            .read_any("thing")
            .unwrap_err());
        assert_eq!(m, "truncated: length of thing needs 3 bytes, 1 left");
        let m = msg(Reader::new(&[0x30]).read_any("thing").unwrap_err());
        assert!(m.contains("no length byte"), "{m}");
        let m = msg(Reader::new(&[0x1F, 0x81, 0x01, 0x00])
            .read_any("thing")
            .unwrap_err());
        assert!(m.contains("multi-byte tag"), "{m}");
    }

    #[test]
    fn wrong_tag_is_named() {
        let m = msg(Reader::new(&[0x02, 0x01, 0x05])
            .read(TAG_OCTET_STRING, "pubkey OCTET STRING")
            .unwrap_err());
        assert_eq!(
            m,
            "expected pubkey OCTET STRING, a OCTET STRING (tag 0x04), found INTEGER (tag 0x02)"
        );
        assert_eq!(tag_name(0xA1), "[1] constructed (tag 0xa1)");
        assert_eq!(tag_name(0x81), "[1] primitive (tag 0x81)");
        assert_eq!(tag_name(0x45), "tag 0x45");
    }

    #[test]
    fn integers_lenient_read() {
        let ok: &[(&[u8], u32)] = &[
            (&[0x00], 0),
            (&[0x05], 5),
            (&[0x00, 0x00, 0x05], 5),
            (&[0x40, 0x00, 0x00, 0x01], 0x4000_0001),
            (&[0x00, 0x81, 0x00, 0x00, 0x01], 0x8100_0001),
            (&[0x81, 0x00, 0x00, 0x01], 0x8100_0001),
            (&[0xC0, 0x00, 0x00, 0x01], 0xC000_0001),
            (&[0x00, 0xC0, 0x00, 0x00, 0x01], 0xC000_0001),
            (&[0xFF, 0xC0, 0x00, 0x00, 0x01], 0xC000_0001),
            (&[0xFF], 0xFFFF_FFFF),
            (&[0x00, 0xFF, 0xFF, 0xFF, 0xFF], 0xFFFF_FFFF),
            (&[0x80, 0x00, 0x00, 0x00], 0x8000_0000),
        ];
        for (content, want) in ok {
            assert_eq!(decode_u32(content, "i").unwrap(), *want, "{content:02x?}");
        }
        let bad: &[&[u8]] = &[
            &[],
            &[0x01, 0x00, 0x00, 0x00, 0x00],
            &[0xFF, 0x7F, 0xFF, 0xFF, 0xFF],
            &[0x00, 0x01, 0x00, 0x00, 0x00, 0x00],
            &[0x7F; 9],
            &[0x80; 40],
        ];
        for content in bad {
            assert!(decode_u32(content, "i").is_err(), "{content:02x?}");
        }
        let m = msg(decode_u32(&[0x01, 0, 0, 0, 0], "parent INTEGER").unwrap_err());
        assert_eq!(m, "parent INTEGER does not fit in 32 bits (0x0100000000)");
    }

    #[test]
    fn integers_strict_write() {
        assert_eq!(encode_u32(0), [0x00]);
        assert_eq!(encode_u32(0x7F), [0x7F]);
        assert_eq!(encode_u32(0x80), [0x00, 0x80]);
        assert_eq!(encode_u32(0x4000_0001), [0x40, 0x00, 0x00, 0x01]);
        assert_eq!(encode_u32(0x8100_0001), [0x00, 0x81, 0x00, 0x00, 0x01]);
        assert_eq!(encode_u32(u32::MAX), [0x00, 0xFF, 0xFF, 0xFF, 0xFF]);
        for v in [
            0u32,
            1,
            0x7F,
            0x80,
            0xFF,
            0x100,
            0x8000,
            0x4000_0001,
            0x8100_0001,
            u32::MAX,
        ] {
            assert_eq!(decode_u32(&encode_u32(v), "i").unwrap(), v);
        }
    }

    #[test]
    fn booleans() {
        assert!(decode_bool(&[0xFF], "b").unwrap());
        assert!(decode_bool(&[0x01], "b").unwrap());
        assert!(!decode_bool(&[0x00], "b").unwrap());
        assert!(decode_bool(&[], "b").is_err());
        assert!(decode_bool(&[0xFF, 0xFF], "b").is_err());
    }

    #[test]
    fn oids() {
        assert_eq!(
            oid_to_string(&[0x67, 0x81, 0x05, 0x0A, 0x01, 0x03]).unwrap(),
            "2.23.133.10.1.3"
        );
        assert_eq!(
            oid_to_string(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]).unwrap(),
            "1.2.840.113549.1.1.1"
        );
        assert_eq!(oid_to_string(&[0x00]).unwrap(), "0.0");
        assert_eq!(oid_to_string(&[0x88, 0x37]).unwrap(), "2.999");
        assert!(oid_to_string(&[]).is_none());
        assert!(oid_to_string(&[0x2A, 0x86]).is_none());
        assert!(oid_to_string(&[0x2A, 0x80, 0x01]).is_none());
        assert!(oid_to_string(&[0xFF; 20]).is_none());
    }
}
