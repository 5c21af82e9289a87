//! Hex text for Names, digests and salts: written in messages and records, read back from
//! records, configuration and command lines.

pub fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex text (either case, nothing else: no sign, prefix or separator); `None`
/// when `text` is not that.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(digits, 16).ok()
        })
        .collect()
}

/// Bytes from hex text in which whitespace and other separators are skipped: test vectors
/// as the specifications print them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn from_spaced(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    unhex(&digits).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(unhex(&hex(&[0, 0xAB, 0xff])).unwrap(), vec![0, 0xAB, 0xff]);
        assert_eq!(unhex("00FFaa").unwrap(), vec![0, 0xff, 0xaa]);
        // u8::from_str_radix alone would take "+f" as 15.
        for bad in ["abc", "zz", "+f", "-1", "é1", "0x00", "00 11"] {
            assert!(unhex(bad).is_none(), "{bad}");
        }
        assert_eq!(from_spaced("00 0b\n ff"), vec![0, 0x0b, 0xff]);
    }
}
