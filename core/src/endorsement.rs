//! The endorsement key (EK): the TPM's identity, certified by its manufacturer. tpmkey
//! derives the EK from the TCG EK Credential Profile's default templates (low range: RSA 2048
//! and ECC P-256; high range: RSA 2048, ECC P-256 and P-384), reads the manufacturer's certificate from its NV index, and checks that
//! both name the same key: a certificate copied from another TPM does not match.

use crate::attest::certificate::{Certificate, OID_EKU_EK_CERTIFICATE};
use crate::attest::signature::key_description;
use crate::connection::{with_link, Need};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::public_key::{KeyPublic, PublicKey};
use crate::templates;
use crate::wire::{Reader, TPM_RH_ENDORSEMENT};

pub use crate::templates::EkType;

/// TPMA_NV_AUTHREAD: the index's own (empty) authorisation reads it.
const TPMA_NV_AUTHREAD: u32 = 1 << 18;
/// NV_Read chunk: within TPM_PT_NV_BUFFER_MAX of every TPM seen (768 on Infineon parts).
const NV_CHUNK: u16 = 768;
/// Larger than any EK certificate (they are about 1 kB).
const MAX_CERTIFICATE: u16 = 4096;

impl EkType {
    /// Every EK type, low range first: the order `tpmkey ek` looks for certificates in.
    pub const ALL: [EkType; 5] = [
        EkType::Rsa2048,
        EkType::EccP256,
        EkType::Rsa2048High,
        EkType::EccP256High,
        EkType::EccP384High,
    ];

    /// `rsa` / `rsa2048`, `ecc` / `p256` / `ecc256` (low range); `rsa-high`, `p256-high`,
    /// `p384` / `ecc384` (high range: P-384 exists only there).
    pub fn parse(s: &str) -> Result<EkType> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" | "rsa2048" => Ok(EkType::Rsa2048),
            "ecc" | "ec" | "p256" | "p-256" | "ecc256" => Ok(EkType::EccP256),
            "rsa-high" | "rsa2048-high" => Ok(EkType::Rsa2048High),
            "ecc-high" | "p256-high" | "ecc256-high" => Ok(EkType::EccP256High),
            "p384" | "p-384" | "ecc384" | "p384-high" | "ecc384-high" => Ok(EkType::EccP384High),
            other => Err(Error::BadInput(format!(
                "EK type \"{other}\" (use rsa or ecc for the TCG low-range RSA 2048 and P-256 \
                 EKs, rsa-high, p256-high or p384 for the high range)"
            ))),
        }
    }

    /// The NV index of this EK's certificate (EK Credential Profile 2.3, 2.2.1.4/5).
    pub fn certificate_index(self) -> u32 {
        match self {
            EkType::Rsa2048 => 0x01c0_0002,
            EkType::EccP256 => 0x01c0_000a,
            EkType::Rsa2048High => 0x01c0_0012,
            EkType::EccP256High => 0x01c0_0014,
            EkType::EccP384High => 0x01c0_0016,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EkType::Rsa2048 => "RSA 2048",
            EkType::EccP256 => "ECC P-256",
            EkType::Rsa2048High => "RSA 2048 (high range)",
            EkType::EccP256High => "ECC P-256 (high range)",
            EkType::EccP384High => "ECC P-384 (high range)",
        }
    }
}

/// The EK the TPM derives from the default template (CreatePrimary in the endorsement
/// hierarchy, whose authorisation is taken to be empty, then FlushContext).
pub fn public(kind: EkType) -> Result<KeyPublic> {
    primary_public(&templates::endorsement_key(kind)?)
}

/// The public area of the endorsement-hierarchy primary of `template` (CreatePrimary,
/// FlushContext): the EK, or an AK when it is created.
pub(crate) fn primary_public(template: &[u8]) -> Result<KeyPublic> {
    with_link(|link| {
        link.retrying(|link| {
            let (handle, public, _) = link.tpm.create_primary(TPM_RH_ENDORSEMENT, &[], template)?;
            let flushed = link.tpm.flush_context(handle);
            let public = KeyPublic::parse_any_name_alg(&public)?;
            flushed?;
            Ok(public)
        })
    })
}

/// The EK certificate (DER) the manufacturer stored at the index of `kind`.
pub fn certificate(kind: EkType) -> Result<Vec<u8>> {
    let index = kind.certificate_index();
    with_link(|link| {
        link.run(Need::Nothing, |tpm, _| {
            let (nv_public, name) = tpm.nv_read_public(index).map_err(|e| match &e {
                // TPM_RC_HANDLE (format 1, any handle number).
                Error::Tpm { rc, .. } if rc.base() == 0x08B => Error::BadInput(format!(
                    "the TPM has no {} EK certificate (NV index 0x{index:08x} is not defined)",
                    kind.name()
                )),
                _ => e,
            })?;
            let size = check_index(index, &nv_public, &name)?;
            let mut cert = Vec::with_capacity(usize::from(size));
            let mut offset = 0u16;
            while offset < size {
                let n = (size - offset).min(NV_CHUNK);
                let chunk = tpm.nv_read(index, &name, &[], offset, n)?;
                if chunk.len() != usize::from(n) {
                    return Err(Error::Integrity(format!(
                        "NV_Read returned {} bytes, asked for {n}",
                        chunk.len()
                    )));
                }
                cert.extend_from_slice(&chunk);
                offset += n;
            }
            Ok(cert)
        })
    })
}

/// Checks TPMS_NV_PUBLIC against the index asked for and its Name; returns dataSize.
fn check_index(index: u32, contents: &[u8], name: &[u8]) -> Result<u16> {
    let mut r = Reader::new(contents);
    let got = r.u32()?;
    let name_alg = r.u16()?;
    let attributes = r.u32()?;
    r.tpm2b()?; // authPolicy
    let size = r.u16()?;
    let hash = Hash::from_tpm_alg(name_alg).ok_or_else(|| {
        Error::Integrity(format!("NV index nameAlg 0x{name_alg:04x} is not a hash"))
    })?;
    let mut computed = name_alg.to_be_bytes().to_vec();
    computed.extend_from_slice(&hash.digest(&[contents]));
    if got != index || computed != name {
        return Err(Error::Integrity(format!(
            "NV_ReadPublic of 0x{index:08x}: the answer does not describe that index"
        )));
    }
    if attributes & TPMA_NV_AUTHREAD == 0 {
        return Err(Error::Unsupported(format!(
            "reading NV index 0x{index:08x}: only indices readable with their own \
             authorisation (authread)"
        )));
    }
    if size == 0 || size > MAX_CERTIFICATE {
        return Err(Error::Integrity(format!(
            "NV index 0x{index:08x} holds {size} bytes, not a certificate"
        )));
    }
    Ok(size)
}

/// Checks that `certificate` (DER or PEM) certifies `ek`: same public key, and, when it
/// names extended key usages, tcg-kp-EKCertificate among them. The chain to the
/// manufacturer's root is the caller's (`openssl verify`, a PKI library).
pub fn check_certificate(certificate: &[u8], ek: &PublicKey) -> Result<()> {
    let cert = Certificate::parse(certificate)?;
    if !cert.extended_key_usages.is_empty() && !cert.has_extended_key_usage(OID_EKU_EK_CERTIFICATE)
    {
        return Err(Error::Evidence(format!(
            "not an EK certificate: its extended key usages are {} (an EK certificate has \
             {OID_EKU_EK_CERTIFICATE})",
            cert.extended_key_usages.join(", ")
        )));
    }
    let certified = cert.public_key()?;
    if certified != *ek {
        return Err(Error::Evidence(format!(
            "EK certificate does not match EK: the certificate is for an {} key, the TPM's \
             EK is another {} key",
            key_description(&certified),
            key_description(ek)
        )));
    }
    Ok(())
}
