//! The policy fields of a TSS2 key file at the ASN.1 level: `policy [1]` (the AND list of
//! statements) and `authPolicy [3]` (named signed policies), and the in-memory list
//! operations on signed policies (add, list, remove).
//!
//! ```text
//! TPMPolicy     ::= SEQUENCE { commandCode   [0] EXPLICIT INTEGER,
//!                              commandPolicy [1] EXPLICIT OCTET STRING }
//! TPMAuthPolicy ::= SEQUENCE { name   [0] EXPLICIT UTF8String OPTIONAL,
//!                              policy [1] EXPLICIT SEQUENCE OF TPMPolicy }
//! ```
//!
//! What a `commandPolicy` body means is the policy module's business (`crate::policy`): here
//! it is bytes, so that a file with a statement tpmkey cannot execute still reads (and is
//! refused by name when used). Reading is lenient like the rest of the codec (non-minimal
//! INTEGERs and lengths); writing is strict DER.

use super::der::{
    self, malformed, tag_explicit, Reader, TAG_INTEGER, TAG_OCTET_STRING, TAG_SEQUENCE,
    TAG_UTF8_STRING,
};
use super::KeyFile;
use crate::error::{Error, Result};

/// One policy statement as stored: a TPM command code and its marshalled body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmPolicy {
    pub command_code: u32,
    pub command_policy: Vec<u8>,
}

/// One signed (authorised) policy: an optional name and the statements, the last of which
/// is a PolicyAuthorize carrying the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmAuthPolicy {
    pub name: Option<String>,
    pub policy: Vec<TpmPolicy>,
}

/// Reads the content of `[n] EXPLICIT SEQUENCE OF T`: each element a SEQUENCE read by
/// `item`, named "{field} {unit} {i}" in errors.
fn read_sequence_of<T>(
    content: &[u8],
    field: &str,
    unit: &str,
    structure: &str,
    item: impl Fn(&[u8], &str) -> Result<T>,
) -> Result<Vec<T>> {
    let seq = der::read_single(content, TAG_SEQUENCE, field, &format!("{field} SEQUENCE"))?;
    let mut r = Reader::new(&seq);
    let mut out = Vec::new();
    while !r.is_empty() {
        let what = format!("{field} {unit} {}", out.len() + 1);
        let body = r.read(TAG_SEQUENCE, &format!("{what} ({structure} SEQUENCE)"))?;
        out.push(item(body, &what)?);
    }
    Ok(out)
}

/// Reads the content of `[n] EXPLICIT SEQUENCE OF TPMPolicy`.
pub fn read_policies(content: &[u8], field: &str) -> Result<Vec<TpmPolicy>> {
    read_sequence_of(content, field, "statement", "TPMPolicy", read_policy)
}

fn read_policy(body: &[u8], what: &str) -> Result<TpmPolicy> {
    let mut r = Reader::new(body);
    let cc = r.read(tag_explicit(0), &format!("{what} commandCode [0]"))?;
    let cc = der::read_single(
        cc,
        TAG_INTEGER,
        &format!("{what} commandCode [0]"),
        &format!("{what} commandCode INTEGER"),
    )?;
    let command_code = der::decode_u32(&cc, &format!("{what} commandCode INTEGER"))?;
    let body = r.read(tag_explicit(1), &format!("{what} commandPolicy [1]"))?;
    let command_policy = der::read_single(
        body,
        TAG_OCTET_STRING,
        &format!("{what} commandPolicy [1]"),
        &format!("{what} commandPolicy OCTET STRING"),
    )?;
    r.finish(&format!("{what} (TPMPolicy SEQUENCE)"))?;
    Ok(TpmPolicy {
        command_code,
        command_policy,
    })
}

/// Reads the content of `[3] EXPLICIT SEQUENCE OF TPMAuthPolicy`.
pub(super) fn read_auth_policies(content: &[u8], field: &str) -> Result<Vec<TpmAuthPolicy>> {
    read_sequence_of(content, field, "entry", "TPMAuthPolicy", read_auth_policy)
}

fn read_auth_policy(body: &[u8], what: &str) -> Result<TpmAuthPolicy> {
    let mut e = Reader::new(body);
    let name = if e.peek_tag() == Some(tag_explicit(0)) {
        let n = e.read(tag_explicit(0), &format!("{what} name [0]"))?;
        let n = der::read_single(
            n,
            TAG_UTF8_STRING,
            &format!("{what} name [0]"),
            &format!("{what} name UTF8String"),
        )?;
        Some(
            String::from_utf8(n)
                .map_err(|_| malformed(format!("{what} name UTF8String is not valid UTF-8")))?,
        )
    } else {
        None
    };
    let policy = e.read(tag_explicit(1), &format!("{what} policy [1]"))?;
    let policy = read_policies(policy, &format!("{what} policy [1]"))?;
    e.finish(&format!("{what} (TPMAuthPolicy SEQUENCE)"))?;
    Ok(TpmAuthPolicy { name, policy })
}

/// `SEQUENCE OF TPMPolicy` in strict DER.
pub fn write_policies(policies: &[TpmPolicy]) -> Vec<u8> {
    let mut body = Vec::new();
    for p in policies {
        let mut item = Vec::with_capacity(p.command_policy.len() + 16);
        der::write_tlv(
            &mut item,
            tag_explicit(0),
            &der::tlv(TAG_INTEGER, &der::encode_u32(p.command_code)),
        );
        der::write_tlv(
            &mut item,
            tag_explicit(1),
            &der::tlv(TAG_OCTET_STRING, &p.command_policy),
        );
        der::write_tlv(&mut body, TAG_SEQUENCE, &item);
    }
    der::tlv(TAG_SEQUENCE, &body)
}

/// `SEQUENCE OF TPMAuthPolicy` in strict DER.
pub(super) fn write_auth_policies(entries: &[TpmAuthPolicy]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in entries {
        let mut item = Vec::new();
        if let Some(name) = &e.name {
            der::write_tlv(
                &mut item,
                tag_explicit(0),
                &der::tlv(TAG_UTF8_STRING, name.as_bytes()),
            );
        }
        der::write_tlv(&mut item, tag_explicit(1), &write_policies(&e.policy));
        der::write_tlv(&mut body, TAG_SEQUENCE, &item);
    }
    der::tlv(TAG_SEQUENCE, &body)
}

/// PEM label of signed policies on their own, as a publisher hands them out.
pub const SIGNED_POLICY_PEM_LABEL: &str = "TPMKEY SIGNED POLICY";

/// Signed policies on their own (`tpmkey policy sign` output): PEM of a DER
/// `SEQUENCE OF TPMAuthPolicy`, the same structure as a key file's `authPolicy [3]`.
pub fn signed_policies_to_pem(entries: &[TpmAuthPolicy]) -> String {
    super::pem_encode(SIGNED_POLICY_PEM_LABEL, &write_auth_policies(entries))
}

/// Reads what [`signed_policies_to_pem`] writes; `what` names the input in errors.
pub fn signed_policies_from_pem(pem: &[u8], what: &str) -> Result<Vec<TpmAuthPolicy>> {
    let der = super::pem_decode(pem, SIGNED_POLICY_PEM_LABEL)?;
    read_auth_policies(&der, what)
}

impl KeyFile {
    /// The signed policies, in the order they are tried (newest first).
    pub fn signed_policies(&self) -> &[TpmAuthPolicy] {
        self.auth_policy.as_deref().unwrap_or_default()
    }

    /// Adds a signed policy in front of the others (it is tried first, as the draft and
    /// openssl_tpm2_engine do). A name already present is refused: names select entries
    /// for removal.
    pub fn add_signed_policy(&mut self, entry: TpmAuthPolicy) -> Result<()> {
        if let Some(name) = &entry.name {
            if self
                .signed_policies()
                .iter()
                .any(|e| e.name.as_deref() == Some(name.as_str()))
            {
                return Err(Error::BadInput(format!(
                    "the key already has a signed policy named \"{name}\""
                )));
            }
        }
        self.auth_policy
            .get_or_insert_with(Vec::new)
            .insert(0, entry);
        Ok(())
    }

    /// Removes the signed policy named `which`, or, if no entry has that name and `which`
    /// is a number, the entry at that 1-based position (as listed). Returns the entry.
    /// Removing the last entry removes the `authPolicy [3]` field.
    pub fn remove_signed_policy(&mut self, which: &str) -> Result<TpmAuthPolicy> {
        let entries = self.signed_policies();
        let index = entries
            .iter()
            .position(|e| e.name.as_deref() == Some(which))
            .or_else(|| {
                which
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1))
                    .filter(|i| *i < entries.len())
            });
        let Some(index) = index else {
            let names: Vec<String> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| match &e.name {
                    Some(n) => format!("{} \"{n}\"", i + 1),
                    None => format!("{} (unnamed)", i + 1),
                })
                .collect();
            return Err(Error::BadInput(format!(
                "no signed policy \"{which}\" in the key (it has: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        let Some(list) = self.auth_policy.as_mut() else {
            return Err(Error::BadInput("the key has no signed policies".into()));
        };
        let removed = list.remove(index);
        if list.is_empty() {
            self.auth_policy = None;
        }
        Ok(removed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn pol(cc: u32, body: &[u8]) -> TpmPolicy {
        TpmPolicy {
            command_code: cc,
            command_policy: body.to_vec(),
        }
    }

    fn entry(name: Option<&str>) -> TpmAuthPolicy {
        TpmAuthPolicy {
            name: name.map(str::to_string),
            policy: vec![pol(0x17F, &[1, 2]), pol(0x16A, &[])],
        }
    }

    #[test]
    fn policies_encode_as_the_draft_says() {
        let der = write_policies(&[pol(0x17F, &[0xDE, 0xAD]), pol(0x16B, &[])]);
        assert_eq!(
            der,
            [
                0x30, 0x1A, 0x30, 0x0C, 0xA0, 0x04, 0x02, 0x02, 0x01, 0x7F, 0xA1, 0x04, 0x04, 0x02,
                0xDE, 0xAD, 0x30, 0x0A, 0xA0, 0x04, 0x02, 0x02, 0x01, 0x6B, 0xA1, 0x02, 0x04, 0x00
            ]
        );
        assert_eq!(
            read_policies(&der, "policy [1]").unwrap(),
            [pol(0x17F, &[0xDE, 0xAD]), pol(0x16B, &[])]
        );
        let auth = write_auth_policies(&[entry(Some("a")), entry(None)]);
        assert_eq!(
            read_auth_policies(&auth, "authPolicy [3]").unwrap(),
            [entry(Some("a")), entry(None)]
        );
    }

    #[test]
    fn lenient_command_code_and_clear_errors() {
        // commandCode with a redundant leading zero byte is read.
        let der = [
            0x30, 0x0D, 0x30, 0x0B, 0xA0, 0x05, 0x02, 0x03, 0x00, 0x01, 0x7F, 0xA1, 0x02, 0x04,
            0x00,
        ];
        assert_eq!(
            read_policies(&der, "policy [1]").unwrap(),
            [pol(0x17F, &[])]
        );
        // Missing commandPolicy.
        let der = [0x30, 0x08, 0x30, 0x06, 0xA0, 0x04, 0x02, 0x02, 0x01, 0x7F];
        let e = read_policies(&der, "policy [1]").unwrap_err().to_string();
        assert!(
            e.contains("policy [1] statement 1 commandPolicy [1]"),
            "{e}"
        );
        // Name that is not UTF-8.
        let der = [
            0x30, 0x0B, 0x30, 0x09, 0xA0, 0x03, 0x0C, 0x01, 0xFF, 0xA1, 0x02, 0x30, 0x00,
        ];
        let e = read_auth_policies(&der, "authPolicy [3]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("entry 1 name UTF8String is not valid UTF-8"),
            "{e}"
        );
    }

    fn key() -> KeyFile {
        KeyFile {
            key_type: super::super::KeyFileType::Loadable,
            empty_auth: true,
            policy: None,
            secret: None,
            auth_policy: None,
            envelope: None,
            parent: 0x4000_0001,
            public: vec![0, 2, 0, 0x23],
            private: vec![0, 1, 0],
        }
    }

    #[test]
    fn add_list_remove_signed_policies() {
        let mut k = key();
        assert!(k.signed_policies().is_empty());
        k.add_signed_policy(entry(Some("v1"))).unwrap();
        k.add_signed_policy(entry(Some("v2"))).unwrap();
        k.add_signed_policy(entry(None)).unwrap();
        let names: Vec<_> = k.signed_policies().iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, [None, Some("v2".into()), Some("v1".into())]);
        let e = k.add_signed_policy(entry(Some("v1"))).unwrap_err();
        assert!(e
            .to_string()
            .contains("already has a signed policy named \"v1\""));
        // Round trip through DER keeps order and names.
        let again = KeyFile::from_der(&k.to_der()).unwrap();
        assert_eq!(again, k);
        assert_eq!(
            k.remove_signed_policy("v2").unwrap().name.as_deref(),
            Some("v2")
        );
        assert_eq!(k.remove_signed_policy("1").unwrap().name, None);
        let e = k.remove_signed_policy("v9").unwrap_err().to_string();
        assert!(
            e.contains("no signed policy \"v9\"") && e.contains("1 \"v1\""),
            "{e}"
        );
        k.remove_signed_policy("v1").unwrap();
        assert_eq!(k.auth_policy, None);
        let e = k.remove_signed_policy("1").unwrap_err().to_string();
        assert!(e.contains("(it has: none)"), "{e}");
    }
}
