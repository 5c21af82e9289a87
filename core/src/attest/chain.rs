//! Certificate chains for EK certificates: each certificate's signature verified with the
//! key of the next, up to a root the caller trusts (the manufacturer's CA certificates).
//! Issuers are matched by their encoded Name and must be CA certificates; signatures are
//! RSASSA-PKCS1-v1_5 or ECDSA with SHA-1/256/384/512 (what TPM vendors sign with).
//! Validity periods and revocation are not checked: EK certificates are commonly used
//! long after their notAfter, and revocation needs the network.

use crate::error::Result;
use crate::hash::Hash;
use crate::keyfile::der::{self, Reader, TAG_INTEGER, TAG_OID, TAG_SEQUENCE};

use super::certificate::Certificate;
use super::signature::{AkPublic, TpmSignature};
use super::{evidence, pem_or_binary};

/// More links than this is not an EK certificate chain.
const MAX_DEPTH: usize = 8;
const TAG_BIT_STRING: u8 = 0x03;

/// One certificate with the parts a signature check needs.
#[derive(Clone, Debug)]
struct Signed {
    /// tbsCertificate, the signed bytes (with its tag and length).
    tbs: Vec<u8>,
    algorithm: String,
    signature: Vec<u8>,
    issuer: Vec<u8>,
    subject: Vec<u8>,
    fields: Certificate,
}

impl Signed {
    fn parse(data: &[u8]) -> Result<Signed> {
        let der_bytes = pem_or_binary(data, "CERTIFICATE")?;
        let fields = Certificate::parse(&der_bytes)?;
        let bad = |e| match e {
            crate::Error::KeyFile(m) => evidence(format!("certificate: {m}")),
            other => other,
        };
        let mut outer = Reader::new(&der_bytes);
        let mut c = Reader::new(outer.read(TAG_SEQUENCE, "Certificate").map_err(bad)?);
        let tbs_content = c.read(TAG_SEQUENCE, "tbsCertificate").map_err(bad)?;
        let mut alg = Reader::new(c.read(TAG_SEQUENCE, "signatureAlgorithm").map_err(bad)?);
        let algorithm =
            der::oid_to_string(alg.read(TAG_OID, "algorithm").map_err(bad)?).unwrap_or_default();
        let bits = c.read(TAG_BIT_STRING, "signatureValue").map_err(bad)?;
        let signature = match bits.split_first() {
            Some((0, rest)) => rest.to_vec(),
            _ => {
                return Err(evidence(
                    "certificate signature is not a whole-byte BIT STRING",
                ))
            }
        };
        let mut t = Reader::new(tbs_content);
        if t.peek_tag() == Some(der::tag_explicit(0)) {
            t.read_any("version").map_err(bad)?;
        }
        t.read_any("serialNumber").map_err(bad)?;
        t.read(TAG_SEQUENCE, "signature").map_err(bad)?;
        let issuer = t.read(TAG_SEQUENCE, "issuer").map_err(bad)?.to_vec();
        t.read(TAG_SEQUENCE, "validity").map_err(bad)?;
        let subject = t.read(TAG_SEQUENCE, "subject").map_err(bad)?.to_vec();
        Ok(Signed {
            tbs: der::tlv(TAG_SEQUENCE, tbs_content),
            algorithm,
            signature,
            issuer,
            subject,
            fields,
        })
    }

    /// Whether `issuer`'s key made this certificate's signature; the error says why not.
    fn signed_by(&self, issuer: &Signed) -> std::result::Result<(), String> {
        let key = AkPublic {
            key: issuer.fields.public_key().map_err(|e| e.to_string())?,
            name: None,
        };
        let sig = match self.algorithm.as_str() {
            "1.2.840.113549.1.1.5" => rsassa(Hash::Sha1, &self.signature),
            "1.2.840.113549.1.1.11" => rsassa(Hash::Sha256, &self.signature),
            "1.2.840.113549.1.1.12" => rsassa(Hash::Sha384, &self.signature),
            "1.2.840.113549.1.1.13" => rsassa(Hash::Sha512, &self.signature),
            "1.2.840.10045.4.1" => ecdsa(Hash::Sha1, &self.signature)?,
            "1.2.840.10045.4.3.2" => ecdsa(Hash::Sha256, &self.signature)?,
            "1.2.840.10045.4.3.3" => ecdsa(Hash::Sha384, &self.signature)?,
            "1.2.840.10045.4.3.4" => ecdsa(Hash::Sha512, &self.signature)?,
            other => return Err(format!("signature algorithm {other} is not supported")),
        };
        key.verify(&self.tbs, &sig)
    }
}

fn rsassa(hash: Hash, sig: &[u8]) -> TpmSignature {
    TpmSignature::Rsassa {
        hash,
        sig: sig.to_vec(),
    }
}

/// Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }.
fn ecdsa(hash: Hash, sig: &[u8]) -> std::result::Result<TpmSignature, String> {
    let parts = (|| {
        let mut outer = Reader::new(sig);
        let mut seq = Reader::new(outer.read(TAG_SEQUENCE, "Ecdsa-Sig-Value")?);
        let r = der::decode_unsigned(seq.read(TAG_INTEGER, "r")?, "r")?.to_vec();
        let s = der::decode_unsigned(seq.read(TAG_INTEGER, "s")?, "s")?.to_vec();
        Ok::<_, crate::Error>((r, s))
    })();
    let (r, s) = parts.map_err(|e| format!("ECDSA signature: {e}"))?;
    Ok(TpmSignature::Ecdsa { hash, r, s })
}

/// Verifies that `leaf` chains to one of `roots` through `intermediates` (each PEM or
/// DER), returning how many certificates lie between them. The error names the
/// certificate whose issuer is missing or whose signature does not verify.
pub fn verify_chain(leaf: &[u8], intermediates: &[Vec<u8>], roots: &[Vec<u8>]) -> Result<usize> {
    let parse_all = |list: &[Vec<u8>]| {
        list.iter()
            .map(|c| Signed::parse(c))
            .collect::<Result<Vec<_>>>()
    };
    let roots = parse_all(roots)?;
    let intermediates = parse_all(intermediates)?;
    let mut current = Signed::parse(leaf)?;
    for depth in 0..MAX_DEPTH {
        let mut why_not = Vec::new();
        for root in roots.iter().filter(|r| r.subject == current.issuer) {
            match current.signed_by(root) {
                Ok(()) => return Ok(depth),
                Err(e) => why_not.push(format!("trusted root: {e}")),
            }
        }
        let mut next = None;
        for i in intermediates
            .iter()
            .filter(|i| i.subject == current.issuer && i.subject != current.subject)
        {
            if i.fields.is_ca != Some(true) {
                why_not.push("its issuer's certificate is not a CA certificate".into());
                continue;
            }
            match current.signed_by(i) {
                Ok(()) => {
                    next = Some(i.clone());
                    break;
                }
                Err(e) => why_not.push(format!("intermediate: {e}")),
            }
        }
        match next {
            Some(i) => current = i,
            None => {
                return Err(evidence(format!(
                    "certificate chain: the certificate at depth {depth} does not chain to a                      trusted root: {}",
                    if why_not.is_empty() {
                        "no certificate given has its issuer's name".to_string()
                    } else {
                        why_not.join("; ")
                    }
                )))
            }
        }
    }
    Err(evidence(format!(
        "certificate chain longer than {MAX_DEPTH}"
    )))
}
