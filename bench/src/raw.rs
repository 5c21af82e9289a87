//! The limit: tss-esapi (ESYS) with the key loaded once and password authorisation, no bus
//! protection. It loads the same TSS2 key file as the tpmkey rows, under a primary made
//! from the same storage key template.

use std::str::FromStr;

use tpmkey::KeyFile;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Data, Digest, EccParameter, EccPoint, HashScheme, HashcheckTicket, Private, Public,
    PublicKeyRsa, RsaDecryptionScheme, Signature, SignatureScheme,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::UnMarshall;
use tss_esapi::tss2_esys::{TPM2B_DIGEST, TPMT_TK_HASHCHECK};
use tss_esapi::Context;

use crate::operation::{Inputs, Op, Output};
use crate::worker::Operation;

fn esys(what: &str) -> impl Fn(tss_esapi::Error) -> String + '_ {
    move |e| format!("tss-esapi {what}: {e}")
}

#[allow(missing_debug_implementations)]
pub struct RawOperation {
    context: Context,
    op: Op,
    private: Private,
    public: Public,
    key: Option<KeyHandle>,
    digest: Digest,
    ciphertext: PublicKeyRsa,
    peer: EccPoint,
    ticket: HashcheckTicket,
}

fn null_ticket() -> Result<HashcheckTicket, String> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: TPM2B_DIGEST::default(),
    })
    .map_err(esys("null hashcheck ticket"))
}

/// A size-prefixed TPM2B from a key file, without its size.
fn tpm2b_body(v: &[u8]) -> &[u8] {
    v.get(2..).unwrap_or_default()
}

impl RawOperation {
    pub fn new(tcti: &str, file: &KeyFile, inputs: &Inputs) -> Result<RawOperation, String> {
        let conf = TctiNameConf::from_str(tcti).map_err(esys("TCTI"))?;
        let mut context = Context::new(conf).map_err(esys("context"))?;
        context.set_sessions((Some(AuthSession::Password), None, None));
        let private =
            Private::try_from(tpm2b_body(&file.private).to_vec()).map_err(esys("private blob"))?;
        let public = Public::unmarshall(tpm2b_body(&file.public)).map_err(esys("public blob"))?;
        let ciphertext =
            PublicKeyRsa::try_from(inputs.ciphertext.clone()).map_err(esys("ciphertext"))?;
        let peer = EccPoint::new(
            EccParameter::try_from(inputs.peer_x.clone()).map_err(esys("peer x"))?,
            EccParameter::try_from(inputs.peer_y.clone()).map_err(esys("peer y"))?,
        );
        Ok(RawOperation {
            context,
            op: inputs.op,
            private,
            public,
            key: None,
            digest: Digest::try_from(inputs.digest.clone()).map_err(esys("digest"))?,
            ciphertext,
            peer,
            ticket: null_ticket()?,
        })
    }
}

impl Operation for RawOperation {
    fn acquire(&mut self) -> Result<(), String> {
        if self.key.is_some() {
            return Ok(());
        }
        let template = tpmkey::templates::storage_key().map_err(|e| e.to_string())?;
        let template = Public::unmarshall(&template).map_err(esys("storage key template"))?;
        let primary = self
            .context
            .create_primary(Hierarchy::Owner, template, None, None, None, None)
            .map_err(esys("CreatePrimary"))?
            .key_handle;
        let loaded = self
            .context
            .load(primary, self.private.clone(), self.public.clone());
        self.context
            .flush_context(primary.into())
            .map_err(esys("FlushContext"))?;
        self.key = Some(loaded.map_err(esys("Load"))?);
        Ok(())
    }

    fn once(&mut self) -> Result<Output, String> {
        let key = self.key.ok_or("raw key not loaded")?;
        let sha256 = HashScheme::new(HashingAlgorithm::Sha256);
        match self.op {
            Op::EcdsaP256 | Op::RsaSign => {
                let scheme = if self.op == Op::RsaSign {
                    SignatureScheme::RsaSsa {
                        hash_scheme: sha256,
                    }
                } else {
                    SignatureScheme::EcDsa {
                        hash_scheme: sha256,
                    }
                };
                let sig = self
                    .context
                    .sign(key, self.digest.clone(), scheme, self.ticket.clone())
                    .map_err(esys("Sign"))?;
                match sig {
                    Signature::EcDsa(s) => Ok(Output::EcdsaRs(
                        s.signature_r().value().to_vec(),
                        s.signature_s().value().to_vec(),
                    )),
                    Signature::RsaSsa(s) => Ok(Output::Rsa(s.signature().value().to_vec())),
                    other => Err(format!("unexpected signature {other:?}")),
                }
            }
            Op::RsaOaep => self
                .context
                .rsa_decrypt(
                    key,
                    self.ciphertext.clone(),
                    RsaDecryptionScheme::Oaep(sha256),
                    Data::default(),
                )
                .map(|m| Output::Secret(m.value().to_vec()))
                .map_err(esys("RSA_Decrypt")),
            Op::EcdhP256 => self
                .context
                .ecdh_z_gen(key, self.peer.clone())
                .map(|z| Output::Secret(z.x().value().to_vec()))
                .map_err(esys("ECDH_ZGen")),
        }
    }

    fn release(&mut self) -> Result<(), String> {
        match self.key.take() {
            Some(key) => self
                .context
                .flush_context(key.into())
                .map_err(esys("FlushContext")),
            None => Ok(()),
        }
    }
}
