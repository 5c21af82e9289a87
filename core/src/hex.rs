//! Lower-case hex of bytes, for Names and digests in messages and records.

pub fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}
