//! systemd's signed PCR policies (`systemd-measure sign`, `ukify`, the UKI's `.pcrsig`
//! section, `/run/systemd/tpm2-pcr-signature.json`):
//!
//! ```text
//! { "sha256": [ { "pcrs": [11], "pkfp": "<hex>", "pol": "<hex>", "sig": "<base64>" }, ... ],
//!   "sha1": [ ... ], ... }
//! ```
//!
//! `pol` is the PolicyPCR digest of the bank's `pcrs` at the predicted values, `sig` an
//! RSASSA-PKCS1-v1_5/SHA-256 signature over the `pol` bytes (so policyRef is empty), and
//! `pkfp` the SHA-256 of the signer's PKCS#1 RSAPublicKey DER. One file holds entries for
//! several banks, phases and keys; [`for_signer`] picks those of one key.

use super::json::Json;
use super::pcr::PcrSelection;
use super::signed::signed_policy_entry;
use super::signer::{SignerKey, TpmSignature};
use super::statement::{BodyForm, PolicyPcr, Statement};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::TpmAuthPolicy;

/// One entry of the file: a signature approving one PolicyPCR digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrSignature {
    /// The bank (the JSON key) and the PCRs (`pcrs`).
    pub selection: PcrSelection,
    /// `pkfp`: SHA-256 of the signer's RSAPublicKey DER.
    pub key_fingerprint: Vec<u8>,
    /// `pol`: the approved policy (a PolicyPCR digest).
    pub approved_policy: Vec<u8>,
    /// `sig`: RSASSA-PKCS1-v1_5 with SHA-256 over `pol`.
    pub signature: Vec<u8>,
}

fn bad(m: String) -> Error {
    Error::BadInput(format!("systemd PCR signature JSON: {m}"))
}

fn unhex(s: &str, what: &str) -> Result<Vec<u8>> {
    crate::hex::unhex(s).ok_or_else(|| bad(format!("{what} is not hex")))
}

/// Parses the JSON text. Banks tpmkey does not know (e.g. sm3_256) are skipped; a
/// malformed entry of a known bank is an error naming it.
pub fn parse(json: &[u8]) -> Result<Vec<PcrSignature>> {
    let root = Json::parse(json).map_err(|e| bad(e.to_string()))?;
    let Json::Object(banks) = root else {
        return Err(bad("the top level is not an object".into()));
    };
    let mut out = Vec::new();
    for (bank, entries) in &banks {
        let Ok(hash) = Hash::from_name(bank) else {
            continue;
        };
        let Json::Array(entries) = entries else {
            return Err(bad(format!("\"{bank}\" is not an array")));
        };
        for (i, e) in entries.iter().enumerate() {
            let what = format!("{bank}[{i}]");
            let text = |key: &str| -> Result<&str> {
                match e.get(key) {
                    Some(Json::Str(s)) => Ok(s.as_str()),
                    _ => Err(bad(format!("{what}: \"{key}\" missing or not a string"))),
                }
            };
            let Some(Json::Array(pcrs)) = e.get("pcrs") else {
                return Err(bad(format!("{what}: \"pcrs\" missing or not an array")));
            };
            let indices = pcrs
                .iter()
                .map(|p| match p {
                    Json::Int(n) => u8::try_from(*n)
                        .map_err(|_| bad(format!("{what}: PCR index {n} out of range (0-23)"))),
                    _ => Err(bad(format!("{what}: \"pcrs\" holds a non-integer"))),
                })
                .collect::<Result<Vec<u8>>>()?;
            let selection =
                PcrSelection::new(hash, &indices).map_err(|e| bad(format!("{what}: {e}")))?;
            let approved_policy = unhex(text("pol")?, &format!("{what} \"pol\""))?;
            if approved_policy.len() != Hash::Sha256.len() {
                return Err(bad(format!(
                    "{what}: \"pol\" is {} bytes, a SHA-256 policy digest is 32",
                    approved_policy.len()
                )));
            }
            let key_fingerprint = unhex(text("pkfp")?, &format!("{what} \"pkfp\""))?;
            let signature =
                crate::keyfile::base64_decode(text("sig")?.as_bytes(), 1).map_err(|e| match e {
                    Error::KeyFile(m) => bad(format!("{what} \"sig\": {m}")),
                    other => other,
                })?;
            if signature.is_empty() {
                return Err(bad(format!("{what}: empty \"sig\"")));
            }
            out.push(PcrSignature {
                selection,
                key_fingerprint,
                approved_policy,
                signature,
            });
        }
    }
    Ok(out)
}

/// The entries signed by `signer` (matched by `pkfp`), in file order.
pub fn for_signer<'a>(entries: &'a [PcrSignature], signer: &SignerKey) -> Vec<&'a PcrSignature> {
    let Some(fp) = signer.systemd_fingerprint() else {
        return Vec::new();
    };
    entries.iter().filter(|e| e.key_fingerprint == fp).collect()
}

impl PcrSignature {
    /// The signature as TPM2_VerifySignature takes it (RSASSA, SHA-256), checked against the
    /// signer's modulus size.
    pub fn tpm_signature(&self, signer: &SignerKey) -> Result<TpmSignature> {
        if signer.systemd_fingerprint().as_deref() != Some(self.key_fingerprint.as_slice()) {
            return Err(Error::BadInput(
                "systemd PCR signature: made by another key (pkfp differs)".into(),
            ));
        }
        signer.signature(&self.signature, Hash::Sha256)
    }

    /// The statements the signer approved: PolicyPCR over the entry's PCRs with an empty
    /// digest (the TPM takes the current values; PolicyAuthorize then checks the result
    /// against `approved_policy`).
    pub fn statements(&self) -> Vec<Statement> {
        vec![Statement::Pcr(PolicyPcr {
            selection: self.selection.clone(),
            pcr_digest: Vec::new(),
            form: BodyForm::Engine,
        })]
    }

    /// An `authPolicy [3]` entry for a key bound to `signer` with an empty policyRef.
    pub fn to_auth_policy(&self, name: Option<&str>, signer: &SignerKey) -> Result<TpmAuthPolicy> {
        signed_policy_entry(
            name,
            &self.statements(),
            signer,
            &[],
            self.tpm_signature(signer)?,
        )
    }
}
