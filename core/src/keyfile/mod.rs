//! TSS2 PRIVATE KEY files (draft-bottomley-tpm2-keys), the key file format shared with
//! tpm2-openssl, tpm2-tss-engine and the Linux kernel's trusted keys.
//!
//! ```text
//! TPMKey ::= SEQUENCE {
//!   type        OBJECT IDENTIFIER,                 -- loadable, importable or sealed
//!   emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!   policy      [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
//!   secret      [2] EXPLICIT OCTET STRING OPTIONAL,
//!   authPolicy  [3] EXPLICIT SEQUENCE OF TPMAuthPolicy OPTIONAL,
//!   description [4] EXPLICIT UTF8String OPTIONAL,  -- read and dropped
//!   rsaParent   [5] EXPLICIT BOOLEAN OPTIONAL,     -- TRUE is refused (unsupported)
//!   envelope   [16] EXPLICIT TPMEnvelope OPTIONAL, -- tpmkey: sealed data > 128 bytes
//!   parent      INTEGER,
//!   pubkey      OCTET STRING,                      -- TPM2B_PUBLIC
//!   privkey     OCTET STRING }                     -- TPM2B_PRIVATE
//! ```
//!
//! Files are read leniently, as real ones need: emptyAuth TRUE written as 0x01
//! (tpm2-openssl), parent handles written as negative INTEGERs (old tools), non-minimal
//! lengths. Files are written in strict DER. Nothing here panics, whatever the input.
//! The policy fields are decoded to their ASN.1 structure here (`policy`); what the
//! statements mean, and their digests, is `crate::policy`.

pub mod der;
pub mod envelope;
pub mod policy;

use std::fmt;

use crate::error::{Error, Result};
use der::{
    malformed, tag_explicit, Reader, CONTEXT_CONSTRUCTED, TAG_BOOLEAN, TAG_INTEGER,
    TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_UTF8_STRING,
};
pub use envelope::Envelope;
pub use policy::{
    read_policies, signed_policies_from_pem, signed_policies_to_pem, write_policies, TpmAuthPolicy,
    TpmPolicy, SIGNED_POLICY_PEM_LABEL,
};

pub const OID_LOADABLE_KEY: &str = "2.23.133.10.1.3";
pub const OID_IMPORTABLE_KEY: &str = "2.23.133.10.1.4";
pub const OID_SEALED_DATA: &str = "2.23.133.10.1.5";

/// The PEM label of a key file.
pub const PEM_LABEL: &str = "TSS2 PRIVATE KEY";

/// Content octets of the OIDs above.
const OID_LOADABLE_KEY_DER: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x03];
const OID_IMPORTABLE_KEY_DER: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x04];
const OID_SEALED_DATA_DER: &[u8] = &[0x67, 0x81, 0x05, 0x0A, 0x01, 0x05];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFileType {
    /// A key created by TPM2_Create under `parent`: TPM2_Load takes public and private.
    Loadable,
    /// A key wrapped for TPM2_Import under `parent` (private is a duplication blob).
    Importable,
    /// A sealed data object (TPM2_Unseal), not a key.
    Sealed,
}

impl KeyFileType {
    /// The dotted OID naming this type in a key file.
    pub fn oid(self) -> &'static str {
        match self {
            KeyFileType::Loadable => OID_LOADABLE_KEY,
            KeyFileType::Importable => OID_IMPORTABLE_KEY,
            KeyFileType::Sealed => OID_SEALED_DATA,
        }
    }

    fn oid_der(self) -> &'static [u8] {
        match self {
            KeyFileType::Loadable => OID_LOADABLE_KEY_DER,
            KeyFileType::Importable => OID_IMPORTABLE_KEY_DER,
            KeyFileType::Sealed => OID_SEALED_DATA_DER,
        }
    }

    fn from_oid_der(content: &[u8]) -> Option<Self> {
        [
            KeyFileType::Loadable,
            KeyFileType::Importable,
            KeyFileType::Sealed,
        ]
        .into_iter()
        .find(|t| t.oid_der() == content)
    }
}

impl fmt::Display for KeyFileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            KeyFileType::Loadable => "loadable key",
            KeyFileType::Importable => "importable key",
            KeyFileType::Sealed => "sealed data",
        };
        write!(f, "{name} (OID {})", self.oid())
    }
}

/// A parsed TSS2 PRIVATE KEY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    pub key_type: KeyFileType,
    /// True: the key has no password.
    pub empty_auth: bool,
    /// `policy [1]`: the statements, ANDed in order (bodies interpreted by `crate::policy`).
    pub policy: Option<Vec<TpmPolicy>>,
    /// Content of the `[2]` OCTET STRING.
    pub secret: Option<Vec<u8>>,
    /// `authPolicy [3]`: the signed policies, in the order they are tried.
    pub auth_policy: Option<Vec<TpmAuthPolicy>>,
    /// `envelope [16]` (sealed data only): the data, AES-256-GCM encrypted under the key
    /// the sealed object holds (`crate::envelope`).
    pub envelope: Option<Envelope>,
    /// Parent handle, e.g. 0x40000001 (owner hierarchy: the standard SRK) or 0x81000001.
    pub parent: u32,
    /// A TPM2B_PUBLIC: 2-byte big-endian size, then the TPMT_PUBLIC.
    pub public: Vec<u8>,
    /// A TPM2B_PRIVATE: 2-byte big-endian size, then the data.
    pub private: Vec<u8>,
}

/// Names of the optional `[n]` fields, for messages.
fn optional_field_name(n: u8) -> String {
    match n {
        0 => "emptyAuth [0]".to_string(),
        1 => "policy [1]".to_string(),
        2 => "secret [2]".to_string(),
        3 => "authPolicy [3]".to_string(),
        4 => "description [4]".to_string(),
        5 => "rsaParent [5]".to_string(),
        envelope::ENVELOPE_TAG => "envelope [16]".to_string(),
        _ => format!("optional field [{n}]"),
    }
}

/// Checks that `data` is a TPM2B: a 2-byte big-endian size equal to the bytes that follow.
fn check_tpm2b(data: &[u8], field: &str, structure: &str) -> Result<()> {
    let Some((size, body)) = data.split_first_chunk::<2>() else {
        return Err(malformed(format!(
            "{field}: {} bytes is too short for a {structure} (2-byte size prefix)",
            data.len()
        )));
    };
    let size = usize::from(u16::from_be_bytes(*size));
    if size != body.len() {
        return Err(malformed(format!(
            "{field}: {structure} size prefix says {size} bytes, but {} bytes follow it",
            body.len()
        )));
    }
    if size == 0 {
        return Err(malformed(format!("{field}: empty {structure}")));
    }
    Ok(())
}

impl KeyFile {
    /// Parses a DER TPMKey.
    pub fn from_der(der: &[u8]) -> Result<KeyFile> {
        if der.is_empty() {
            return Err(malformed("empty input"));
        }
        if der.starts_with(b"-----") {
            return Err(malformed(
                "input is PEM text, not DER (read it as PEM or use from_pem_or_der)",
            ));
        }
        let mut outer = Reader::new(der);
        let body = outer.read(TAG_SEQUENCE, "TPMKey SEQUENCE")?;
        if !outer.is_empty() {
            return Err(malformed(format!(
                "trailing bytes after the key: {} bytes follow the TPMKey SEQUENCE",
                outer.remaining()
            )));
        }

        let mut r = Reader::new(body);
        let oid = r.read(TAG_OID, "type OBJECT IDENTIFIER")?;
        let key_type = KeyFileType::from_oid_der(oid).ok_or_else(|| {
            let name = der::oid_to_string(oid)
                .unwrap_or_else(|| format!("(malformed: {})", der::hex_prefix(oid, 32)));
            malformed(format!(
                "unknown key type OID {name} (expected {OID_LOADABLE_KEY} loadable key, \
                 {OID_IMPORTABLE_KEY} importable key or {OID_SEALED_DATA} sealed data)"
            ))
        })?;

        let mut key = KeyFile {
            key_type,
            empty_auth: false,
            policy: None,
            secret: None,
            auth_policy: None,
            envelope: None,
            parent: 0,
            public: Vec::new(),
            private: Vec::new(),
        };

        let mut previous: Option<u8> = None;
        while let Some(tag) = r.peek_tag() {
            if tag & 0xE0 != CONTEXT_CONSTRUCTED {
                break;
            }
            let n = tag & 0x1F;
            let field = optional_field_name(n);
            let (_, content) = r.read_any(&field)?;
            if let Some(prev) = previous {
                if n <= prev {
                    return Err(malformed(format!(
                        "{field} is repeated or out of order (after {})",
                        optional_field_name(prev)
                    )));
                }
            }
            previous = Some(n);
            match n {
                0 => {
                    let b = der::read_single(content, TAG_BOOLEAN, &field, "emptyAuth BOOLEAN")?;
                    key.empty_auth = der::decode_bool(&b, "emptyAuth BOOLEAN")?;
                }
                1 => key.policy = Some(policy::read_policies(content, &field)?),
                2 => {
                    key.secret = Some(der::read_single(
                        content,
                        TAG_OCTET_STRING,
                        &field,
                        "secret OCTET STRING",
                    )?);
                }
                3 => key.auth_policy = Some(policy::read_auth_policies(content, &field)?),
                4 => {
                    // A human-readable label: nothing depends on it, so it is dropped.
                    der::read_single(content, TAG_UTF8_STRING, &field, "description UTF8String")?;
                }
                5 => {
                    let b = der::read_single(content, TAG_BOOLEAN, &field, "rsaParent BOOLEAN")?;
                    if der::decode_bool(&b, "rsaParent BOOLEAN")? {
                        return Err(Error::Unsupported(
                            "TSS2 key file field rsaParent [5]: keys whose parent is an RSA \
                             primary key (only the standard ECC P-256 storage key is used)"
                                .to_string(),
                        ));
                    }
                }
                envelope::ENVELOPE_TAG if key_type == KeyFileType::Sealed => {
                    key.envelope = Some(Envelope::read(content, &field)?);
                }
                _ => {
                    return Err(Error::Unsupported(format!(
                        "TSS2 key file: {field} of the TPMKey SEQUENCE is not known to this version"
                    )));
                }
            }
        }

        let parent = r.read(TAG_INTEGER, "parent INTEGER")?;
        key.parent = der::decode_u32(parent, "parent INTEGER")?;
        key.public = r.read(TAG_OCTET_STRING, "pubkey OCTET STRING")?.to_vec();
        check_tpm2b(&key.public, "pubkey", "TPM2B_PUBLIC")?;
        key.private = r.read(TAG_OCTET_STRING, "privkey OCTET STRING")?.to_vec();
        check_tpm2b(&key.private, "privkey", "TPM2B_PRIVATE")?;
        r.finish("the TPMKey SEQUENCE (after privkey)")?;
        Ok(key)
    }

    /// Parses a PEM key file: the first block labelled "TSS2 PRIVATE KEY" (text around it and
    /// other blocks before it are skipped).
    pub fn from_pem(pem: &[u8]) -> Result<KeyFile> {
        let der = pem_decode(pem, PEM_LABEL)?;
        KeyFile::from_der(&der)
    }

    /// Parses PEM if the input contains "-----BEGIN", DER otherwise.
    pub fn from_pem_or_der(data: &[u8]) -> Result<KeyFile> {
        if find(data, b"-----BEGIN", 0).is_some() {
            return KeyFile::from_pem(data);
        }
        match KeyFile::from_der(data) {
            Err(Error::KeyFile(m)) if data.first().is_some_and(|&b| b != TAG_SEQUENCE) => Err(
                malformed(format!("neither PEM (no \"-----BEGIN\" line) nor DER: {m}")),
            ),
            other => other,
        }
    }

    /// Encodes in strict DER. emptyAuth is written only when true.
    pub fn to_der(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.public.len() + self.private.len() + 64);
        der::write_tlv(&mut body, TAG_OID, self.key_type.oid_der());
        // Always written: tpm2-openssl reads an absent emptyAuth as "no password", so a key
        // with one would be tried with the empty password there (a dictionary-attack count).
        let empty_auth = if self.empty_auth { 0xFF } else { 0x00 };
        der::write_tlv(
            &mut body,
            tag_explicit(0),
            &der::tlv(TAG_BOOLEAN, &[empty_auth]),
        );
        if let Some(policy) = &self.policy {
            der::write_tlv(&mut body, tag_explicit(1), &policy::write_policies(policy));
        }
        if let Some(secret) = &self.secret {
            der::write_tlv(
                &mut body,
                tag_explicit(2),
                &der::tlv(TAG_OCTET_STRING, secret),
            );
        }
        if let Some(auth_policy) = &self.auth_policy {
            der::write_tlv(
                &mut body,
                tag_explicit(3),
                &policy::write_auth_policies(auth_policy),
            );
        }
        if let Some(envelope) = &self.envelope {
            der::write_tlv(
                &mut body,
                tag_explicit(envelope::ENVELOPE_TAG),
                &envelope.write(),
            );
        }
        der::write_tlv(&mut body, TAG_INTEGER, &der::encode_u32(self.parent));
        der::write_tlv(&mut body, TAG_OCTET_STRING, &self.public);
        der::write_tlv(&mut body, TAG_OCTET_STRING, &self.private);
        der::tlv(TAG_SEQUENCE, &body)
    }

    /// Encodes as PEM: "-----BEGIN TSS2 PRIVATE KEY-----", base64 in 64-character lines,
    /// "-----END TSS2 PRIVATE KEY-----", each line ended by "\n".
    pub fn to_pem(&self) -> String {
        pem_encode(PEM_LABEL, &self.to_der())
    }

    /// Ok if tpmkey can use this key as it is: a loadable key without an import secret
    /// (policies are run when the key is used). Otherwise `Error::Unsupported` naming the
    /// field.
    pub fn check_loadable(&self) -> Result<()> {
        if self.key_type != KeyFileType::Loadable {
            return Err(Error::Unsupported(format!(
                "TSS2 key file type {}: only loadable keys (OID {OID_LOADABLE_KEY}) are supported",
                self.key_type
            )));
        }
        if self.secret.is_some() {
            return Err(Error::Unsupported(
                "TSS2 key file field secret [2]: keys wrapped with an import secret".to_string(),
            ));
        }
        Ok(())
    }
}

/// Position of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let tail = hay.get(from..)?;
    tail.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A PEM label as found in the input, quoted and cut short for a message.
fn show_label(label: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(label).chars().take(64).collect();
    format!("{text:?}")
}

/// Decodes the first PEM block labelled `want`.
pub fn pem_decode(data: &[u8], want: &str) -> Result<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const DASHES: &[u8] = b"-----";
    if data.is_empty() {
        return Err(malformed("empty input"));
    }
    let mut found: Vec<String> = Vec::new();
    let mut from = 0;
    while let Some(begin) = find(data, BEGIN, from) {
        let label_start = begin + BEGIN.len();
        let Some(label_end) = find(data, DASHES, label_start) else {
            return Err(malformed(
                "PEM \"-----BEGIN\" line is not closed by \"-----\"",
            ));
        };
        let label = data.get(label_start..label_end).unwrap_or_default();
        let body_start = label_end + DASHES.len();
        if label != want.as_bytes() {
            found.push(show_label(label));
            from = body_start;
            continue;
        }
        let end_marker = format!("-----END {want}-----");
        let Some(body_end) = find(data, b"-----END ", body_start) else {
            return Err(malformed(format!(
                "PEM block has no \"{end_marker}\" line (truncated file?)"
            )));
        };
        if find(data, end_marker.as_bytes(), body_end) != Some(body_end) {
            let end_label_start = body_end + b"-----END ".len();
            let end_label = data
                .get(end_label_start..)
                .and_then(|t| t.split(|&c| c == b'-' || c == b'\n').next())
                .unwrap_or_default();
            return Err(malformed(format!(
                "PEM END label {} does not match BEGIN label \"{want}\"",
                show_label(end_label)
            )));
        }
        let body = data.get(body_start..body_end).unwrap_or_default();
        if body.contains(&b':') {
            return Err(Error::Unsupported(
                "PEM headers (such as Proc-Type/DEK-Info of legacy encrypted PEM) in a TSS2 \
                 PRIVATE KEY"
                    .to_string(),
            ));
        }
        let first_line = data
            .get(..body_start)
            .unwrap_or_default()
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
            + 1;
        let der = base64_decode(body, first_line)?;
        if der.is_empty() {
            return Err(malformed("empty PEM body"));
        }
        return Ok(der);
    }
    if found.is_empty() {
        Err(malformed(format!(
            "no PEM \"-----BEGIN {want}-----\" line found"
        )))
    } else {
        Err(malformed(format!(
            "PEM label is {}, expected \"{want}\"",
            found.join(", ")
        )))
    }
}

fn base64_char(v: u32) -> char {
    let c = match v & 63 {
        v @ 0..=25 => b'A' + v as u8,
        v @ 26..=51 => b'a' + (v - 26) as u8,
        v @ 52..=61 => b'0' + (v - 52) as u8,
        62 => b'+',
        _ => b'/',
    };
    char::from(c)
}

fn base64_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Standard base64 with padding, no line breaks.
/// PEM armour: "-----BEGIN label-----", base64 in 64-character lines, "-----END label-----",
/// each line ended by "\n".
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 32);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        // base64 text is ASCII, so any byte index is a char boundary.
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk.first().copied().map_or(0, u32::from);
        let b1 = chunk.get(1).copied().map_or(0, u32::from);
        let b2 = chunk.get(2).copied().map_or(0, u32::from);
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(base64_char(n >> 18));
        out.push(base64_char(n >> 12));
        out.push(if chunk.len() > 1 {
            base64_char(n >> 6)
        } else {
            '='
        });
        out.push(if chunk.len() > 2 { base64_char(n) } else { '=' });
    }
    out
}

/// Standard base64 with padding; whitespace and line breaks are skipped. Bits after the data
/// in a padded group are ignored. `first_line` numbers the lines in messages.
pub(crate) fn base64_decode(text: &[u8], first_line: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut count = 0usize; // characters in the current group of 4
    let mut pad = 0usize; // '=' seen in the current group
    let mut done = false; // a padded group ended the data
    let mut line = first_line;
    for &c in text {
        match c {
            b'\n' => {
                line += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => continue,
            _ => {}
        }
        if done {
            return Err(malformed(format!(
                "bad base64 on line {line}: data after the '=' padding"
            )));
        }
        if c == b'=' {
            pad += 1;
            if count < 2 || pad > 2 {
                return Err(malformed(format!(
                    "bad base64 on line {line}: misplaced '='"
                )));
            }
            acc <<= 6;
        } else {
            if pad > 0 {
                return Err(malformed(format!(
                    "bad base64 on line {line}: data after the '=' padding"
                )));
            }
            let Some(v) = base64_value(c) else {
                return Err(malformed(format!(
                    "bad base64 on line {line}: invalid character {:?}",
                    char::from(c)
                )));
            };
            acc = (acc << 6) | v;
        }
        count += 1;
        if count == 4 {
            let bytes = acc.to_be_bytes();
            let take = 3 - pad;
            out.extend(bytes.iter().skip(1).take(take));
            done = pad > 0;
            acc = 0;
            count = 0;
            pad = 0;
        }
    }
    if count != 0 {
        return Err(malformed(format!(
            "bad base64: truncated, the last group has {count} characters instead of 4"
        )));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    use crate::hex::from_spaced as hex;

    fn keyfile_msg(r: Result<KeyFile>) -> String {
        match r {
            Err(Error::KeyFile(m)) => m,
            other => panic!("expected Error::KeyFile, got {other:?}"),
        }
    }

    fn unsupported_msg(r: Result<impl fmt::Debug>) -> String {
        match r {
            Err(Error::Unsupported(m)) => m,
            other => panic!("expected Error::Unsupported, got {other:?}"),
        }
    }

    /// A TPM2B of `len` body bytes with a recognisable pattern.
    fn tpm2b(len: usize, seed: u8) -> Vec<u8> {
        let mut v = u16::try_from(len).unwrap().to_be_bytes().to_vec();
        v.extend((0..len).map(|i| seed.wrapping_add(i as u8)));
        v
    }

    /// A key of realistic sizes (RSA-2048: 280-byte public, 222-byte private): the outer
    /// SEQUENCE needs a 2-byte long-form length.
    fn sample() -> KeyFile {
        KeyFile {
            key_type: KeyFileType::Loadable,
            empty_auth: true,
            policy: None,
            secret: None,
            auth_policy: None,
            envelope: None,
            parent: 0x4000_0001,
            public: tpm2b(280, 1),
            private: tpm2b(222, 7),
        }
    }

    /// A policy `[1]` content: SEQUENCE OF { TPMPolicy { [0] INTEGER 0x17F, [1] OCTET STRING dead } }.
    const POLICY_HEX: &str = "30 0E 30 0C A0 04 02 02 01 7F A1 04 04 02 DE AD";

    /// Every field set, small sizes.
    fn sample_full() -> KeyFile {
        KeyFile {
            key_type: KeyFileType::Importable,
            empty_auth: true,
            policy: Some(vec![TpmPolicy {
                command_code: 0x17F,
                command_policy: vec![0xDE, 0xAD],
            }]),
            secret: Some(vec![0x5E; 20]),
            auth_policy: Some(Vec::new()),
            envelope: None,
            parent: 0x8100_0001,
            public: tpm2b(30, 1),
            private: tpm2b(12, 9),
        }
    }

    /// The golden key: loadable, emptyAuth, parent 0x40000001, 4-byte public, 3-byte private.
    const GOLDEN_HEX: &str = "30 22
        06 06 67 81 05 0A 01 03
        A0 03 01 01 FF
        02 04 40 00 00 01
        04 06 00 04 00 23 00 0B
        04 05 00 03 AA BB CC";

    fn golden() -> KeyFile {
        KeyFile {
            key_type: KeyFileType::Loadable,
            empty_auth: true,
            policy: None,
            secret: None,
            auth_policy: None,
            envelope: None,
            parent: 0x4000_0001,
            public: hex("00 04 00 23 00 0B"),
            private: hex("00 03 AA BB CC"),
        }
    }

    /// A DER key with the given fields between the OID and the parent, and the given parent
    /// INTEGER element, with golden public/private.
    fn build(oid: &str, optional: &str, parent: &str) -> Vec<u8> {
        let body = hex(&format!(
            "{oid} {optional} {parent} 04 06 00 04 00 23 00 0B 04 05 00 03 AA BB CC"
        ));
        der::tlv(TAG_SEQUENCE, &body)
    }

    const LOADABLE_OID: &str = "06 06 67 81 05 0A 01 03";

    #[test]
    fn oid_constants_match_their_encoding() {
        for t in [
            KeyFileType::Loadable,
            KeyFileType::Importable,
            KeyFileType::Sealed,
        ] {
            assert_eq!(der::oid_to_string(t.oid_der()).unwrap(), t.oid());
            assert_eq!(KeyFileType::from_oid_der(t.oid_der()), Some(t));
        }
    }

    #[test]
    fn golden_vector_decodes_and_encodes() {
        let der = hex(GOLDEN_HEX);
        assert_eq!(KeyFile::from_der(&der).unwrap(), golden());
        assert_eq!(golden().to_der(), der);
    }

    #[test]
    fn golden_vector_all_fields() {
        let der = hex(&format!(
            "30 74
             06 06 67 81 05 0A 01 04
             A0 03 01 01 FF
             A1 10 {POLICY_HEX}
             A2 16 04 14 {}
             A3 02 30 00
             02 05 00 81 00 00 01
             04 20 00 1E {}
             04 0E 00 0C {}",
            "5E ".repeat(20),
            (1u8..=30).map(|b| format!("{b:02x} ")).collect::<String>(),
            (9u8..=20).map(|b| format!("{b:02x} ")).collect::<String>(),
        ));
        assert_eq!(sample_full().to_der(), der);
        assert_eq!(KeyFile::from_der(&der).unwrap(), sample_full());
    }

    #[test]
    fn golden_pem() {
        let pem = golden().to_pem();
        assert_eq!(
            pem,
            "-----BEGIN TSS2 PRIVATE KEY-----\n\
             MCIGBmeBBQoBA6ADAQH/AgRAAAABBAYABAAjAAsEBQADqrvM\n\
             -----END TSS2 PRIVATE KEY-----\n"
        );
        assert_eq!(KeyFile::from_pem(pem.as_bytes()).unwrap(), golden());
    }

    #[test]
    fn round_trip_der_and_pem() {
        for key in [sample(), sample_full(), golden()] {
            let der = key.to_der();
            assert_eq!(KeyFile::from_der(&der).unwrap(), key);
            assert_eq!(KeyFile::from_pem_or_der(&der).unwrap(), key);
            let pem = key.to_pem();
            assert_eq!(KeyFile::from_pem(pem.as_bytes()).unwrap(), key);
            assert_eq!(KeyFile::from_pem_or_der(pem.as_bytes()).unwrap(), key);
        }
        let mut k = sample();
        k.empty_auth = false;
        k.key_type = KeyFileType::Sealed;
        k.parent = 0;
        assert_eq!(KeyFile::from_der(&k.to_der()).unwrap(), k);
    }

    #[test]
    fn long_form_lengths_in_output() {
        let der = sample().to_der();
        // 8 (OID) + 5 (emptyAuth) + 6 (parent) + 4+282 (pubkey) + 3+224 (privkey) = 532
        assert_eq!(der.get(..4).unwrap(), &[0x30, 0x82, 0x02, 0x14]);
        assert_eq!(der.len(), 536);
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let pem = sample().to_pem();
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("-----BEGIN TSS2 PRIVATE KEY-----")
        );
        assert_eq!(
            lines.last().copied(),
            Some("-----END TSS2 PRIVATE KEY-----")
        );
        let body = lines.get(1..lines.len() - 1).unwrap();
        let (last, full) = body.split_last().unwrap();
        assert!(full.iter().all(|l| l.len() == 64));
        assert!(!last.is_empty() && last.len() <= 64);
        assert!(pem.ends_with("-----\n"));
    }

    #[test]
    fn empty_auth_written_as_0x01_is_true() {
        let der = build(LOADABLE_OID, "A0 03 01 01 01", "02 04 40 00 00 01");
        let k = KeyFile::from_der(&der).unwrap();
        assert!(k.empty_auth);
        // Written back as strict DER TRUE.
        assert_eq!(k.to_der(), hex(GOLDEN_HEX));
    }

    #[test]
    fn empty_auth_false_is_written() {
        let absent = build(LOADABLE_OID, "", "02 04 40 00 00 01");
        let k = KeyFile::from_der(&absent).unwrap();
        assert!(!k.empty_auth);
        let der = build(LOADABLE_OID, "A0 03 01 01 00", "02 04 40 00 00 01");
        assert_eq!(k.to_der(), der);
        assert!(!KeyFile::from_der(&k.to_der()).unwrap().empty_auth);
    }

    #[test]
    fn negative_parent_is_twos_complement() {
        for (parent, want) in [
            ("02 04 81 00 00 01", 0x8100_0001u32),
            ("02 05 00 81 00 00 01", 0x8100_0001),
            ("02 04 C0 00 00 01", 0xC000_0001),
            ("02 05 00 C0 00 00 01", 0xC000_0001),
            ("02 05 FF C0 00 00 01", 0xC000_0001),
            ("02 06 00 00 40 00 00 01", 0x4000_0001),
        ] {
            let k = KeyFile::from_der(&build(LOADABLE_OID, "", parent)).unwrap();
            assert_eq!(k.parent, want, "{parent}");
        }
        let k = KeyFile::from_der(&build(LOADABLE_OID, "", "02 04 81 00 00 01")).unwrap();
        assert_eq!(
            k.to_der(),
            build(LOADABLE_OID, "A0 03 01 01 00", "02 05 00 81 00 00 01")
        );
    }

    #[test]
    fn parent_out_of_range_is_rejected() {
        for parent in [
            "02 05 01 00 00 00 00",
            "02 05 FF 7F FF FF FF",
            "02 09 00 00 00 00 01 00 00 00 00",
            "02 00",
        ] {
            let m = keyfile_msg(KeyFile::from_der(&build(LOADABLE_OID, "", parent)));
            assert!(m.contains("parent INTEGER"), "{parent}: {m}");
        }
    }

    #[test]
    fn rejects_empty_input() {
        assert_eq!(keyfile_msg(KeyFile::from_der(b"")), "empty input");
        assert_eq!(keyfile_msg(KeyFile::from_pem(b"")), "empty input");
        assert_eq!(keyfile_msg(KeyFile::from_pem_or_der(b"")), "empty input");
    }

    #[test]
    fn rejects_garbage() {
        let m = keyfile_msg(KeyFile::from_der(b"hello world"));
        assert!(
            m.contains("expected TPMKey SEQUENCE") && m.contains("0x68"),
            "{m}"
        );
        let m = keyfile_msg(KeyFile::from_pem_or_der(b"hello world"));
        assert!(m.starts_with("neither PEM"), "{m}");
        let m = keyfile_msg(KeyFile::from_pem(b"hello world"));
        assert!(m.contains("no PEM"), "{m}");
        let m = keyfile_msg(KeyFile::from_der(&golden().to_pem().into_bytes()));
        assert!(m.contains("PEM text"), "{m}");
        // A valid SEQUENCE that is not a TPMKey.
        let m = keyfile_msg(KeyFile::from_der(&hex("30 03 02 01 05")));
        assert!(m.contains("type OBJECT IDENTIFIER"), "{m}");
    }

    #[test]
    fn rejects_truncated() {
        let der = hex(GOLDEN_HEX);
        let m = keyfile_msg(KeyFile::from_der(der.get(..20).unwrap()));
        assert_eq!(m, "truncated: TPMKey SEQUENCE needs 34 bytes, 18 left");
        // Inner truncation: the SEQUENCE length agrees, the pubkey length does not.
        let der = der::tlv(
            TAG_SEQUENCE,
            &hex(&format!(
                "{LOADABLE_OID} 02 04 40 00 00 01 04 82 01 90 00 04 00 23"
            )),
        );
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert_eq!(m, "truncated: pubkey OCTET STRING needs 400 bytes, 4 left");
        // Missing privkey.
        let der = der::tlv(
            TAG_SEQUENCE,
            &hex(&format!(
                "{LOADABLE_OID} 02 04 40 00 00 01 04 06 00 04 00 23 00 0B"
            )),
        );
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert_eq!(m, "truncated: expected privkey OCTET STRING, no bytes left");
        // Truncated PEM: no END line.
        let pem = sample().to_pem();
        let m = keyfile_msg(KeyFile::from_pem(
            pem.get(..pem.len() / 2).unwrap().as_bytes(),
        ));
        assert!(m.contains("-----END TSS2 PRIVATE KEY-----"), "{m}");
    }

    #[test]
    fn rejects_wrong_pem_label() {
        let pem = golden().to_pem().replace("TSS2 PRIVATE KEY", "PRIVATE KEY");
        let m = keyfile_msg(KeyFile::from_pem(pem.as_bytes()));
        assert_eq!(
            m,
            "PEM label is \"PRIVATE KEY\", expected \"TSS2 PRIVATE KEY\""
        );
        let m = keyfile_msg(KeyFile::from_pem_or_der(pem.as_bytes()));
        assert!(m.contains("\"PRIVATE KEY\""), "{m}");
        // END label differs from BEGIN.
        let pem = golden()
            .to_pem()
            .replace("END TSS2 PRIVATE KEY", "END RSA PRIVATE KEY");
        let m = keyfile_msg(KeyFile::from_pem(pem.as_bytes()));
        assert!(m.contains("\"RSA PRIVATE KEY\""), "{m}");
    }

    #[test]
    fn finds_key_block_after_other_blocks_and_text() {
        let pem = format!(
            "Bag Attributes: some text\n-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n{}",
            sample().to_pem().replace('\n', "\r\n")
        );
        assert_eq!(KeyFile::from_pem(pem.as_bytes()).unwrap(), sample());
        assert_eq!(KeyFile::from_pem_or_der(pem.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn rejects_bad_base64() {
        let good = golden().to_pem();
        let m = keyfile_msg(KeyFile::from_pem(
            good.replacen("MCIG", "MC*G", 1).as_bytes(),
        ));
        assert_eq!(m, "bad base64 on line 2: invalid character '*'");
        let m = keyfile_msg(KeyFile::from_pem(
            good.replacen("vM\n", "v\n", 1).as_bytes(),
        ));
        assert!(m.contains("truncated"), "{m}");
        let m = keyfile_msg(KeyFile::from_pem(
            good.replacen("vM\n", "v=M\n", 1).as_bytes(),
        ));
        assert!(m.contains("bad base64"), "{m}");
        let m = keyfile_msg(KeyFile::from_pem(
            good.replacen("vM\n", "vM\nAA==\n", 1).as_bytes(),
        ));
        assert!(m.contains("trailing bytes after the key"), "{m}");
        let m = keyfile_msg(KeyFile::from_pem(
            b"-----BEGIN TSS2 PRIVATE KEY-----\n\n-----END TSS2 PRIVATE KEY-----\n",
        ));
        assert_eq!(m, "empty PEM body");
        let m = unsupported_msg(KeyFile::from_pem(
            b"-----BEGIN TSS2 PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nMCIG\n-----END TSS2 PRIVATE KEY-----\n",
        ));
        assert!(m.contains("PEM headers"), "{m}");
    }

    #[test]
    fn base64_vectors() {
        for (plain, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xFB, 0xFF, 0xBF], "+/+/"),
        ] {
            assert_eq!(base64_encode(plain), enc);
            assert_eq!(base64_decode(enc.as_bytes(), 1).unwrap(), plain);
        }
        assert_eq!(base64_decode(b" Zm9v\r\n YmFy\n", 1).unwrap(), b"foobar");
        for bad in ["Z", "Zm9", "=Zm9", "Z===", "Zg==Zg==", "Zg=a", "Zm9v!"] {
            assert!(base64_decode(bad.as_bytes(), 1).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_trailing_bytes() {
        let mut der = hex(GOLDEN_HEX);
        der.extend_from_slice(&[0x00, 0x00]);
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert_eq!(
            m,
            "trailing bytes after the key: 2 bytes follow the TPMKey SEQUENCE"
        );
        // Extra element inside the SEQUENCE after privkey.
        let der = der::tlv(
            TAG_SEQUENCE,
            &hex(&format!("{} 05 00", GOLDEN_HEX.get(5..).unwrap())),
        );
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert!(m.contains("after privkey"), "{m}");
    }

    #[test]
    fn rejects_indefinite_length() {
        let mut der = hex("30 80");
        der.extend_from_slice(hex(GOLDEN_HEX).get(2..).unwrap());
        der.extend_from_slice(&[0, 0]);
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert!(
            m.contains("indefinite length") && m.contains("TPMKey SEQUENCE"),
            "{m}"
        );
        let der = build(LOADABLE_OID, "A0 80 01 01 FF 00 00", "02 04 40 00 00 01");
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert!(
            m.contains("indefinite length") && m.contains("emptyAuth"),
            "{m}"
        );
    }

    #[test]
    fn rejects_overflowing_lengths() {
        let m = keyfile_msg(KeyFile::from_der(&hex(
            "30 89 01 00 00 00 00 00 00 00 00 00",
        )));
        assert!(m.contains("overflows"), "{m}");
        let m = keyfile_msg(KeyFile::from_der(&hex("30 84 FF FF FF FF 06")));
        assert_eq!(
            m,
            "truncated: TPMKey SEQUENCE needs 4294967295 bytes, 1 left"
        );
        let der = der::tlv(
            TAG_SEQUENCE,
            &hex(&format!(
                "{LOADABLE_OID} 02 04 40 00 00 01 04 88 FF FF FF FF FF FF FF FF 00"
            )),
        );
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert!(m.contains("pubkey OCTET STRING"), "{m}");
    }

    #[test]
    fn rejects_unknown_oid() {
        let m = keyfile_msg(KeyFile::from_der(&build(
            "06 03 2A 03 04",
            "",
            "02 04 40 00 00 01",
        )));
        assert!(m.starts_with("unknown key type OID 1.2.3.4 "), "{m}");
        let m = keyfile_msg(KeyFile::from_der(&build(
            "06 02 2A 83",
            "",
            "02 04 40 00 00 01",
        )));
        assert!(m.contains("malformed: 2a83"), "{m}");
    }

    #[test]
    fn rejects_bad_tpm2b() {
        let der = der::tlv(
            TAG_SEQUENCE,
            &hex(&format!(
                "{LOADABLE_OID} 02 04 40 00 00 01 04 06 00 05 00 23 00 0B 04 05 00 03 AA BB CC"
            )),
        );
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert_eq!(
            m,
            "pubkey: TPM2B_PUBLIC size prefix says 5 bytes, but 4 bytes follow it"
        );
        let der = der::tlv(
            TAG_SEQUENCE,
            &hex(&format!(
                "{LOADABLE_OID} 02 04 40 00 00 01 04 06 00 04 00 23 00 0B 04 05 00 02 AA BB CC"
            )),
        );
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert!(m.starts_with("privkey: TPM2B_PRIVATE"), "{m}");
        let der = der::tlv(
            TAG_SEQUENCE,
            &hex(&format!(
                "{LOADABLE_OID} 02 04 40 00 00 01 04 01 00 04 05 00 03 AA BB CC"
            )),
        );
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert!(m.starts_with("pubkey:") && m.contains("too short"), "{m}");
        let der = der::tlv(
            TAG_SEQUENCE,
            &hex(&format!(
                "{LOADABLE_OID} 02 04 40 00 00 01 04 06 00 04 00 23 00 0B 04 02 00 00"
            )),
        );
        let m = keyfile_msg(KeyFile::from_der(&der));
        assert_eq!(m, "privkey: empty TPM2B_PRIVATE");
    }

    #[test]
    fn optional_fields_order_and_extensions() {
        let parent = "02 04 40 00 00 01";
        let m = keyfile_msg(KeyFile::from_der(&build(
            LOADABLE_OID,
            "A3 02 30 00 A1 02 30 00",
            parent,
        )));
        assert!(m.contains("policy [1] is repeated or out of order"), "{m}");
        let m = keyfile_msg(KeyFile::from_der(&build(
            LOADABLE_OID,
            "A0 03 01 01 FF A0 03 01 01 FF",
            parent,
        )));
        assert!(m.contains("emptyAuth [0] is repeated"), "{m}");
        // description [4] is read and dropped.
        let k = KeyFile::from_der(&build(
            LOADABLE_OID,
            "A0 03 01 01 FF A4 05 0C 03 6B 65 79",
            parent,
        ))
        .unwrap();
        assert_eq!(k, golden());
        // rsaParent [5] FALSE is fine, TRUE is not supported.
        assert_eq!(
            KeyFile::from_der(&build(
                LOADABLE_OID,
                "A0 03 01 01 FF A5 03 01 01 00",
                parent
            ))
            .unwrap(),
            golden()
        );
        let m = unsupported_msg(KeyFile::from_der(&build(
            LOADABLE_OID,
            "A5 03 01 01 FF",
            parent,
        )));
        assert!(m.contains("rsaParent [5]"), "{m}");
        let m = unsupported_msg(KeyFile::from_der(&build(
            LOADABLE_OID,
            "A9 02 05 00",
            parent,
        )));
        assert!(m.contains("[9]"), "{m}");
        // Wrong inner types.
        let m = keyfile_msg(KeyFile::from_der(&build(
            LOADABLE_OID,
            "A0 03 02 01 01",
            parent,
        )));
        assert!(m.contains("emptyAuth BOOLEAN"), "{m}");
        let m = keyfile_msg(KeyFile::from_der(&build(
            LOADABLE_OID,
            "A0 06 01 01 FF 01 01 FF",
            parent,
        )));
        assert!(m.contains("end of emptyAuth [0]"), "{m}");
        let m = keyfile_msg(KeyFile::from_der(&build(
            LOADABLE_OID,
            "A1 03 04 01 00",
            parent,
        )));
        assert!(m.contains("policy [1] SEQUENCE"), "{m}");
        let m = keyfile_msg(KeyFile::from_der(&build(
            LOADABLE_OID,
            "A2 03 30 01 00",
            parent,
        )));
        assert!(m.contains("secret OCTET STRING"), "{m}");
    }

    #[test]
    fn check_loadable_names_the_field() {
        assert!(golden().check_loadable().is_ok());
        assert!(sample().check_loadable().is_ok());
        let mut k = golden();
        k.key_type = KeyFileType::Importable;
        let m = unsupported_msg(k.check_loadable());
        assert!(m.contains("importable key (OID 2.23.133.10.1.4)"), "{m}");
        k.key_type = KeyFileType::Sealed;
        assert!(unsupported_msg(k.check_loadable()).contains("sealed data"));
        let mut k = golden();
        k.secret = Some(vec![1]);
        let m = unsupported_msg(k.check_loadable());
        assert!(m.contains("secret [2]"), "{m}");
        // Policies are run when the key is used, not refused.
        let mut k = golden();
        k.policy = Some(Vec::new());
        k.auth_policy = Some(Vec::new());
        assert!(k.check_loadable().is_ok());
    }

    /// A tiny deterministic generator for the mutation test.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Parses through every entry point; when a parse succeeds, the encoding must round-trip.
    fn parse_all(data: &[u8]) -> bool {
        let mut any_ok = false;
        for k in [
            KeyFile::from_der(data),
            KeyFile::from_pem(data),
            KeyFile::from_pem_or_der(data),
        ]
        .into_iter()
        .flatten()
        {
            any_ok = true;
            let der = k.to_der();
            assert_eq!(KeyFile::from_der(&der).unwrap(), k);
            assert_eq!(KeyFile::from_pem(k.to_pem().as_bytes()).unwrap(), k);
            assert_eq!(KeyFile::from_der(&der).unwrap().to_der(), der);
        }
        any_ok
    }

    #[test]
    fn no_panic_on_truncations_and_mutations() {
        for key in [sample(), sample_full(), golden()] {
            let der = key.to_der();
            let pem = key.to_pem().into_bytes();
            // Every strict prefix of a DER key is invalid.
            for len in 0..der.len() {
                let prefix = der.get(..len).unwrap();
                assert!(KeyFile::from_der(prefix).is_err(), "prefix {len} accepted");
                parse_all(prefix);
            }
            // Every PEM prefix that cuts into the END line or earlier is invalid.
            let end_line = pem.len() - "-----END TSS2 PRIVATE KEY-----\n".len();
            for len in 0..pem.len() {
                let prefix = pem.get(..len).unwrap();
                let ok = parse_all(prefix);
                if len < end_line + "-----END TSS2 PRIVATE KEY-----".len() {
                    assert!(!ok, "PEM prefix {len} accepted");
                }
            }
            // Single-byte mutations at every position.
            for input in [&der, &pem] {
                for pos in 0..input.len() {
                    for op in 0..12u8 {
                        let mut m = input.clone();
                        if let Some(b) = m.get_mut(pos) {
                            *b = match op {
                                0 => *b ^ 0x01,
                                1 => *b ^ 0x80,
                                2 => *b ^ 0xFF,
                                3 => 0x00,
                                4 => 0x7F,
                                5 => 0x80,
                                6 => 0x81,
                                7 => 0x84,
                                8 => 0xFF,
                                9 => b'=',
                                10 => b'\n',
                                _ => b.wrapping_add(1),
                            };
                        }
                        parse_all(&m);
                    }
                    let mut removed = input.clone();
                    removed.remove(pos);
                    parse_all(&removed);
                }
            }
            // Random multi-byte mutations, insertions and splices.
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
            for _ in 0..20_000 {
                let mut m = if rng.below(2) == 0 {
                    der.clone()
                } else {
                    pem.clone()
                };
                for _ in 0..=rng.below(4) {
                    let pos = rng.below(m.len());
                    match rng.below(3) {
                        0 => {
                            if let Some(b) = m.get_mut(pos) {
                                *b = rng.next() as u8;
                            }
                        }
                        1 => m.insert(pos, rng.next() as u8),
                        _ => {
                            let cut = rng.below(m.len() - pos + 1);
                            m.drain(pos..pos + cut);
                        }
                    }
                }
                parse_all(&m);
            }
        }
    }
}
