//! The device side of attestation: the attestation key (AK) and what it signs. The AK is a
//! restricted signing key the TPM re-derives from the endorsement hierarchy's seed (a
//! primary, as the EK is): `ak create` draws a random `unique` value for its template, and
//! the AK file holds only that template and the public area it gave, no private blob. The
//! AK then certifies keys (TPM2_Certify, the bundle of [`crate::attest::certify`]) and quotes
//! PCRs (TPM2_Quote, the file of [`crate::attest::quote`]) and makes the ACME
//! device-attest-01 object ([`crate::attest::acme`]); credential activation proves
//! to a verifier that it lives in the TPM of an EK.
//!
//! AK file format, PEM "TPMKEY ATTESTATION KEY":
//!
//! ```text
//! u16 version = 1, or 2 for a persistent AK
//! TPM2B template     (TPMT_PUBLIC given to CreatePrimary in the endorsement hierarchy)
//! TPM2B_PUBLIC       (the AK's public area as the TPM created it)
//! [u32 handle]       (version 2: the persistent handle the AK is stored at)
//! ```
//!
//! A persistent AK (`ak create --persist`) is used where it is, without re-deriving it: a
//! quote is then TPM2_Quote + TPM2_PCR_Read, two commands, and a certification saves the
//! CreatePrimary and FlushContext. The quote's signature is checked against the AK on
//! file before it is returned, so another object at that handle is noticed at once.
//!
//! ```no_run
//! use tpmkey::attest::{credential, quote::PcrSelection};
//! use tpmkey::attestation_key::AttestationKey;
//! use tpmkey::endorsement::{self, EkType};
//! use tpmkey::{KeyFile, KeySpec, TpmKey};
//! # fn main() -> tpmkey::Result<()> {
//! // Enrolment: the verifier checks the EK certificate and wraps a secret for the AK.
//! let ek_cert = endorsement::certificate(EkType::Rsa2048)?;
//! endorsement::check_certificate(&ek_cert, &endorsement::public(EkType::Rsa2048)?.key)?;
//! let ak = AttestationKey::create(KeySpec::EcP256)?;
//! let ek = credential::EkPublic::from_certificate(&ek_cert)?;
//! let cred = credential::make_credential(&ek, &ak.public().name, b"verifier secret")?;
//! assert_eq!(ak.activate_credential(EkType::Rsa2048, &cred)?.as_slice(), b"verifier secret");
//! // Evidence for fresh nonces: a key certified, PCRs quoted.
//! let file = KeyFile::from_pem(&std::fs::read("tls.key").unwrap())?;
//! let bundle = ak.certify(&TpmKey::from_key_file(&file, None)?, b"nonce 1")?;
//! let quote = ak.quote(&PcrSelection::parse_list("sha256:0,7,16")?, b"nonce 2")?;
//! std::fs::write("bundle.pem", bundle.to_pem()).unwrap();
//! std::fs::write("quote.pem", quote.to_pem()).unwrap();
//! # Ok(()) }
//! ```

use zeroize::Zeroizing;

use crate::attest::acme::{self, AttestationObject};
use crate::attest::attestation::{Attestation, Attested, PcrSelection};
use crate::attest::certificate::Certificate;
use crate::attest::certify::CertifyBundle;
use crate::attest::creation::CreationRecord;
use crate::attest::credential::Credential;
use crate::attest::pem_or_binary;
use crate::attest::quote::{PcrValue, QuoteFile};
use crate::attest::signature::{AkPublic, TpmSignature};
use crate::commands::{handle_name, Tpm};
use crate::connection::{with_link, Need};
use crate::endorsement::primary_public;
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keyfile::pem_encode;
use crate::keys::TpmKey;
use crate::public_key::KeyPublic;
use crate::session_crypto::{SessionCrypto, CRYPTO};
use crate::templates::{self, EkType, KeySpec};
use crate::wire::{tpm2b_contents, CommandCode, Reader, Writer, TPM_RH_ENDORSEMENT, TPM_RH_OWNER};

pub const PEM_LABEL: &str = "TPMKEY ATTESTATION KEY";
const VERSION: u16 = 1;
const VERSION_PERSISTENT: u16 = 2;
/// Random bytes in the template's unique field: each AK its own key.
const UNIQUE_LEN: usize = 32;
/// Digests a TPM returns per TPM2_PCR_Read (TPML_DIGEST holds at most 8).
const PCRS_PER_READ: usize = 8;
/// TPM_RC_TICKET as `base` gives it (format 1, the parameter number stripped).
const TPM_RC_TICKET: u32 = 0x0A0;
/// Qualifying data is a TPM2B_DATA: at most the size of the largest digest.
pub const MAX_NONCE: usize = 64;

#[derive(Clone, Debug)]
pub struct AttestationKey {
    template: Vec<u8>,
    public: KeyPublic,
    /// Where the AK is stored (EvictControl), when it is persistent.
    persistent: Option<u32>,
}

impl AttestationKey {
    /// Creates a new AK (ECC P-256 with ECDSA-SHA256, or RSA 2048 with RSASSA-SHA256).
    /// Costs one CreatePrimary and one FlushContext.
    pub fn create(spec: KeySpec) -> Result<AttestationKey> {
        // Not a secret, only distinct: software randomness saves TPM commands.
        let mut unique = [0u8; UNIQUE_LEN];
        CRYPTO.random(&mut unique);
        let template = templates::attestation_key(spec, &unique)?;
        let public = primary_public(&template)?;
        Ok(AttestationKey {
            template,
            public,
            persistent: None,
        })
    }

    /// [`AttestationKey::create`], then stored at the persistent `handle` (0x81xxxxxx)
    /// under the owner hierarchy, with the configured owner authorisation. Costs a
    /// CreatePrimary, an EvictControl and a FlushContext (plus the session's start).
    pub fn create_persistent(spec: KeySpec, handle: u32) -> Result<AttestationKey> {
        if !(0x8100_0000..=0x81FF_FFFF).contains(&handle) {
            return Err(Error::BadInput(format!(
                "0x{handle:08x} is not a persistent handle (0x81xxxxxx)"
            )));
        }
        let mut unique = [0u8; UNIQUE_LEN];
        CRYPTO.random(&mut unique);
        let template = templates::attestation_key(spec, &unique)?;
        let public = with_link(|link| {
            let owner_auth = link.config().parent_auth.clone();
            link.run(Need::Nothing, |tpm, _| {
                let (transient, public, name) =
                    tpm.create_primary(TPM_RH_ENDORSEMENT, &[], &template)?;
                let persisted = tpm.evict_control(&owner_auth, transient, &name, handle);
                let flushed = tpm.flush_context(transient);
                persisted?;
                flushed?;
                KeyPublic::parse(&public)
            })
        })?;
        Ok(AttestationKey {
            template,
            public,
            persistent: Some(handle),
        })
    }

    /// The persistent handle of the AK, when it has one.
    pub fn persistent_handle(&self) -> Option<u32> {
        self.persistent
    }

    /// The AK's public area, key and Name (what a verifier enrols).
    pub fn public(&self) -> &KeyPublic {
        &self.public
    }

    pub fn to_pem(&self) -> String {
        let mut w = Writer::new();
        w.u16(self.persistent.map_or(VERSION, |_| VERSION_PERSISTENT))
            .tpm2b(&self.template)
            .bytes(&self.public.blob);
        if let Some(handle) = self.persistent {
            w.u32(handle);
        }
        pem_encode(PEM_LABEL, &w.into_vec())
    }

    /// Reads an AK file (PEM or its binary body).
    pub fn decode(data: &[u8]) -> Result<AttestationKey> {
        let body = pem_or_binary(data, PEM_LABEL)?;
        let bad = |_| Error::BadInput("AK file is truncated".into());
        let mut r = Reader::new(&body);
        let version = r.u16().map_err(bad)?;
        if version != VERSION && version != VERSION_PERSISTENT {
            return Err(Error::BadInput(format!(
                "AK file version {version} is not {VERSION} or {VERSION_PERSISTENT}"
            )));
        }
        let template = r.tpm2b().map_err(bad)?.to_vec();
        let public = KeyPublic::parse(r.tpm2b_raw().map_err(bad)?)?;
        let persistent = if version == VERSION_PERSISTENT {
            Some(r.u32().map_err(bad)?)
        } else {
            None
        };
        if !r.is_empty() {
            return Err(Error::BadInput("AK file has trailing bytes".into()));
        }
        if !(public.restricted && public.can_sign) {
            return Err(Error::BadInput(
                "AK file: the key is not a restricted signing key".into(),
            ));
        }
        Ok(AttestationKey {
            template,
            public,
            persistent,
        })
    }

    /// Re-derives the AK in the TPM, runs `op` with its handle and flushes it. The TPM must
    /// derive the Name on file: another TPM, or one whose endorsement seed changed, cannot.
    /// A persistent AK is used at its handle.
    fn with_loaded<R>(
        &self,
        tpm: &mut Tpm,
        op: impl FnOnce(&mut Tpm, u32) -> Result<R>,
    ) -> Result<R> {
        if let Some(handle) = self.persistent {
            // Certify names the AK in its HMAC, so another object there fails it; a
            // quote's signature is checked by the caller.
            return op(tpm, handle);
        }
        let (handle, _, name) = tpm.create_primary(TPM_RH_ENDORSEMENT, &[], &self.template)?;
        let result = if name == self.public.name {
            op(tpm, handle)
        } else {
            Err(Error::Integrity(
                "this TPM does not derive the AK of this file (another TPM, or its endorsement \
                 seed changed)"
                    .into(),
            ))
        };
        let flushed = tpm.flush_context(handle);
        let r = result?;
        flushed?;
        Ok(r)
    }

    /// TPM2_Certify of `key` with `nonce` as qualifying data: proves to a verifier that
    /// trusts this AK that `key` lives in the same TPM, with the attributes and authPolicy
    /// of its public area.
    pub fn certify(&self, key: &TpmKey, nonce: &[u8]) -> Result<CertifyBundle> {
        check_nonce(nonce)?;
        // Certify needs the key's ADMIN role: its authValue, whatever its policy (tpmkey
        // keys have adminWithPolicy clear), so a policy-bound key is certified even while
        // the platform does not satisfy its policy: the evidence proves the binding.
        let (cert_info, signature) = key.with_loaded_for_admin(|tpm, t| {
            self.with_loaded(tpm, |tpm, ak| {
                tpm.certify(
                    t.handle,
                    &t.name,
                    &t.auth,
                    ak,
                    &self.public.name,
                    &[],
                    nonce,
                )
            })
        })?;
        Ok(CertifyBundle {
            cert_info,
            signature,
            public: key.public().blob.clone(),
            creation_data: None,
        })
    }

    /// TPM2_CertifyCreation of `key` with `nonce`: proves, beyond what [`Self::certify`]
    /// proves, that the TPM created the key with the creation data of `creation` (its
    /// parent, the PCRs selected then and their digest, the locality), which the bundle
    /// carries for the verifier. The TPM checks the creation ticket against the key's
    /// Name: the creation record of another key fails with TPM_RC_TICKET.
    pub fn certify_creation(
        &self,
        key: &TpmKey,
        creation: &CreationRecord,
        nonce: &[u8],
    ) -> Result<CertifyBundle> {
        check_nonce(nonce)?;
        let (cert_info, signature) = key
            .with_loaded_for_admin(|tpm, t| {
                self.with_loaded(tpm, |tpm, ak| {
                    tpm.certify_creation(ak, &[], t.handle, nonce, creation)
                })
            })
            .map_err(|e| match e.response_code() {
                Some(rc) if rc.base() == TPM_RC_TICKET => Error::BadInput(format!(
                    "the creation data is not this key's: the TPM refused its creation \
                     ticket ({e})"
                )),
                _ => e,
            })?;
        Ok(CertifyBundle {
            cert_info,
            signature,
            public: key.public().blob.clone(),
            creation_data: Some(creation.creation_data.clone()),
        })
    }

    /// TPM2_Certify of the storage key that salts tpmkey's sessions and parents its keys
    /// (the configured persistent parent, else the storage primary). A verifier that
    /// checks the bundle learns the storage key's true Name; configured as
    /// `storage-key-name`, it makes tpmkey refuse any other key for salting and as a parent
    /// (an interposer's, or one after a TPM clear), closing trust on first use.
    pub fn certify_storage_key(&self, nonce: &[u8]) -> Result<CertifyBundle> {
        check_nonce(nonce)?;
        let (cert_info, signature, public) = with_link(|link| {
            let parent = link.config().parent.unwrap_or(TPM_RH_OWNER);
            link.run(Need::Parent(parent), |tpm, target| {
                let t = target.ok_or_else(|| Error::Integrity("storage key not loaded".into()))?;
                // Unauthenticated, but the verifier recomputes its Name and compares it
                // with the Name the TPM certified.
                let (public, _) = tpm.read_public(t.handle)?;
                let (cert_info, signature) = self.with_loaded(tpm, |tpm, ak| {
                    tpm.certify(
                        t.handle,
                        &t.name,
                        &t.auth,
                        ak,
                        &self.public.name,
                        &[],
                        nonce,
                    )
                })?;
                Ok((cert_info, signature, public))
            })
        })?;
        Ok(CertifyBundle {
            cert_info,
            signature,
            public,
            creation_data: None,
        })
    }

    /// The ACME device-attest-01 "tpm" attestation object for `key`: a certification of it
    /// whose extraData is SHA-256(`key_authorization`), with `x5c`, the AK certificate
    /// chain an attestation CA issued (DER, the AK's certificate first).
    pub fn acme_attestation(
        &self,
        key: &TpmKey,
        key_authorization: &str,
        x5c: Vec<Vec<u8>>,
    ) -> Result<AttestationObject> {
        let ak_cert = x5c
            .first()
            .ok_or_else(|| Error::BadInput("the AK certificate chain is empty".into()))?;
        if Certificate::parse(ak_cert)?.public_key()? != self.public.key {
            return Err(Error::BadInput(
                "the first certificate of the chain is not this AK's".into(),
            ));
        }
        let nonce = acme::key_authorization_digest(key_authorization);
        let bundle = self.certify(key, &nonce)?;
        let alg = acme::cose_alg(&TpmSignature::parse(&bundle.signature)?).ok_or_else(|| {
            Error::Unsupported("an AK signature scheme without a COSE algorithm".into())
        })?;
        Ok(AttestationObject {
            alg,
            x5c,
            sig: bundle.signature,
            cert_info: bundle.cert_info,
            pub_area: tpm2b_contents(&bundle.public)?.to_vec(),
        })
    }

    /// TPM2_Quote of `selection` with `nonce`, and the PCR values the quote covers
    /// (TPM2_PCR_Read right after it: a PCR extended in between makes the verifier report
    /// a digest mismatch, never a false match).
    pub fn quote(&self, selection: &[PcrSelection], nonce: &[u8]) -> Result<QuoteFile> {
        check_nonce(nonce)?;
        if selection.iter().all(|s| s.pcrs.is_empty()) {
            return Err(Error::BadInput("a quote needs at least one PCR".into()));
        }
        let mut asked = Writer::new();
        PcrSelection::write_list(&mut asked, selection);
        let asked = asked.into_vec();
        with_link(|link| {
            link.retrying(|link| {
                let (quoted, signature) =
                    self.with_loaded(&mut link.tpm, |tpm, ak| tpm.quote(ak, &[], nonce, &asked))?;
                if self.persistent.is_some() {
                    self.check_own_signature(&quoted, &signature)?;
                }
                // The TPM's own output: a part that does not parse was altered on the way
                // (the AK's password session carries no response HMAC).
                let attestation = Attestation::parse(&quoted).map_err(|e| match e {
                    Error::Evidence(m) => Error::Integrity(format!(
                        "TPM2_Quote returned an attestation that does not parse: {m}"
                    )),
                    other => other,
                })?;
                let covered = match attestation.attested {
                    Attested::Quote { selection, .. } => selection,
                    _ => return Err(Error::Integrity("TPM2_Quote returned no quote".into())),
                };
                let digests = read_pcrs(&mut link.tpm, &covered)?;
                Ok(QuoteFile {
                    quoted,
                    signature,
                    pcrs: PcrValue::from_selection(&covered, &digests)?,
                })
            })
        })
    }

    /// TPM2_ActivateCredential with the EK of `ek` (derived from its default template and
    /// authorised by PolicySecret(TPM_RH_ENDORSEMENT), the endorsement authorisation taken
    /// to be empty, followed for the high range by PolicyOR(PolicyA, PolicyC); the SHA-384
    /// P-384 EK is refused): the secret a verifier wrapped with MakeCredential for this AK's Name
    /// and that EK. Returning it proves that the AK lives in the EK's TPM. A credential made
    /// for another AK or EK fails with the TPM's integrity error.
    pub fn activate_credential(
        &self,
        ek: EkType,
        credential: &Credential,
    ) -> Result<Zeroizing<Vec<u8>>> {
        if ek.name_alg() != Hash::Sha256 {
            // Its authPolicy is a SHA-384 digest, met only in a SHA-384 policy session, and
            // MakeCredential for it needs ECDH P-384 with SHA-384 KDFs and AES-256:
            // tpmkey's sessions and `makecred` are SHA-256, AES-128.
            return Err(Error::Unsupported(format!(
                "credential activation with the {} EK: its policy needs a SHA-384 session \
                 (use the rsa, ecc, rsa-high or p256-high EK)",
                ek.name()
            )));
        }
        let template = templates::endorsement_key(ek)?;
        let endorsement = handle_name(TPM_RH_ENDORSEMENT);
        // High range: PolicyB = PolicyOR(PolicyA, PolicyC); PolicySecret gives PolicyA.
        let policy_or = ek.policy_or_branches().map(|branches| {
            let mut w = Writer::new();
            w.u32(branches.len() as u32);
            for b in branches {
                w.tpm2b(b);
            }
            w.into_vec()
        });
        with_link(|link| {
            link.run_in_policy_session(|tpm, session| {
                let (ek_handle, _, ek_name) =
                    tpm.create_primary(TPM_RH_ENDORSEMENT, &[], &template)?;
                let result = self.with_loaded(tpm, |tpm, ak| {
                    tpm.policy_secret(TPM_RH_ENDORSEMENT, &endorsement, &[], session, &[])
                        .inspect_err(|_| tpm.policy.used(false))?;
                    if let Some(branches) = &policy_or {
                        tpm.policy_statement(session, CommandCode::PolicyOr, branches)
                            .inspect_err(|_| tpm.policy.used(false))?;
                    }
                    tpm.activate_credential(
                        ak,
                        &self.public.name,
                        &[],
                        ek_handle,
                        &ek_name,
                        &credential.credential_blob,
                        &credential.secret,
                    )
                });
                let flushed = tpm.flush_context(ek_handle);
                let secret = result?;
                flushed?;
                Ok(secret)
            })
        })
    }
}

impl AttestationKey {
    /// Checks that this AK signed `message`: a persistent handle might hold another key.
    fn check_own_signature(&self, message: &[u8], signature: &[u8]) -> Result<()> {
        let ak = AkPublic::from_tpm2b_public(&self.public.blob)?;
        ak.verify(message, &TpmSignature::parse(signature)?)
            .map_err(|why| {
                Error::Integrity(format!(
                    "the object at 0x{:08x} is not this AK: {why}",
                    self.persistent.unwrap_or_default()
                ))
            })
    }
}

fn check_nonce(nonce: &[u8]) -> Result<()> {
    if nonce.len() > MAX_NONCE {
        return Err(Error::BadInput(format!(
            "nonce of {} bytes (at most {MAX_NONCE})",
            nonce.len()
        )));
    }
    Ok(())
}

/// The values of `selection` in selection order, eight PCRs per TPM2_PCR_Read.
fn read_pcrs(tpm: &mut Tpm, selection: &[PcrSelection]) -> Result<Vec<Vec<u8>>> {
    let mut values = Vec::new();
    for bank in selection {
        for pcrs in bank.pcrs.chunks(PCRS_PER_READ) {
            let part = [PcrSelection {
                hash: bank.hash,
                pcrs: pcrs.to_vec(),
            }];
            let mut w = Writer::new();
            PcrSelection::write_list(&mut w, &part);
            let (answered, digests) = tpm.pcr_read(&w.into_vec())?;
            let answered = PcrSelection::read_list(&mut Reader::new(&answered))?;
            if answered != part || digests.len() != pcrs.len() {
                return Err(Error::Integrity(format!(
                    "PCR_Read answered {} values for {}",
                    digests.len(),
                    crate::attest::attestation::selection_text(&part)
                )));
            }
            values.extend(digests);
        }
    }
    Ok(values)
}
