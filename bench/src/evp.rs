//! Provider rows: EVP_DigestSign, EVP_PKEY_decrypt and EVP_PKEY_derive through libcrypto with
//! a TSS2 key file, either with the tpmkey provider or with Debian's tpm2-openssl. Both go
//! through the same code; only the provider's name and search path differ.

use std::path::{Path, PathBuf};

use openssl::derive::Deriver;
use openssl::encrypt::Decrypter;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::provider::Provider;
use openssl::rsa::Padding;
use openssl::sign::Signer;

use crate::operation::{Inputs, Op, Output, MESSAGE};
use crate::worker::Operation;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvpStack {
    Tpmkey,
    Tpm2Openssl,
}

impl EvpStack {
    pub fn provider_name(self) -> &'static str {
        match self {
            EvpStack::Tpmkey => "tpmkey",
            EvpStack::Tpm2Openssl => "tpm2",
        }
    }
}

/// The directory holding `tpmkey.so` (a symlink to the built provider), for
/// OSSL_PROVIDER_set_default_search_path.
pub fn provider_dir(work: &Path) -> PathBuf {
    work.join("providers")
}

fn ssl(what: &str) -> impl Fn(openssl::error::ErrorStack) -> String + '_ {
    move |e| format!("{what}: {e}")
}

#[allow(missing_debug_implementations)]
pub struct EvpOperation {
    stack: EvpStack,
    search_path: Option<PathBuf>,
    pem: Vec<u8>,
    op: Op,
    ciphertext: Vec<u8>,
    peer: Option<PKey<Public>>,
    // Field order is drop order: the key before the providers that hold it.
    key: Option<PKey<Private>>,
    providers: Vec<Provider>,
}

impl EvpOperation {
    pub fn new(stack: EvpStack, work: &Path, pem: Vec<u8>, inputs: &Inputs) -> EvpOperation {
        EvpOperation {
            stack,
            search_path: (stack == EvpStack::Tpmkey).then(|| provider_dir(work)),
            pem,
            op: inputs.op,
            ciphertext: inputs.ciphertext.clone(),
            peer: inputs.peer.clone(),
            key: None,
            providers: Vec::new(),
        }
    }

    fn key(&self) -> Result<&PKey<Private>, String> {
        self.key.as_ref().ok_or_else(|| "key not loaded".into())
    }
}

impl Operation for EvpOperation {
    /// Loads the provider (then the default provider) and decodes the key file.
    fn acquire(&mut self) -> Result<(), String> {
        if self.providers.is_empty() {
            if let Some(dir) = &self.search_path {
                let dir = dir.to_str().ok_or("provider path is not UTF-8")?;
                Provider::set_default_search_path(None, dir)
                    .map_err(ssl("provider search path"))?;
            }
            let name = self.stack.provider_name();
            self.providers
                .push(Provider::load(None, name).map_err(ssl("loading the provider"))?);
            self.providers
                .push(Provider::load(None, "default").map_err(ssl("loading default"))?);
        }
        if self.key.is_none() {
            self.key = Some(
                PKey::private_key_from_pem(&self.pem).map_err(ssl("decoding the TSS2 key file"))?,
            );
        }
        Ok(())
    }

    fn once(&mut self) -> Result<Output, String> {
        let key = self.key()?;
        match self.op {
            Op::EcdsaP256 | Op::RsaSign => {
                let mut signer =
                    Signer::new(MessageDigest::sha256(), key).map_err(ssl("EVP_DigestSignInit"))?;
                if self.op == Op::RsaSign {
                    signer
                        .set_rsa_padding(Padding::PKCS1)
                        .map_err(ssl("PKCS#1 v1.5 padding"))?;
                }
                let sig = signer
                    .sign_oneshot_to_vec(MESSAGE)
                    .map_err(ssl("EVP_DigestSign"))?;
                Ok(if self.op == Op::RsaSign {
                    Output::Rsa(sig)
                } else {
                    Output::EcdsaDer(sig)
                })
            }
            Op::RsaOaep => {
                let mut d = Decrypter::new(key).map_err(ssl("EVP_PKEY_decrypt_init"))?;
                d.set_rsa_padding(Padding::PKCS1_OAEP)
                    .map_err(ssl("OAEP"))?;
                d.set_rsa_oaep_md(MessageDigest::sha256())
                    .map_err(ssl("OAEP hash"))?;
                d.set_rsa_mgf1_md(MessageDigest::sha256())
                    .map_err(ssl("MGF1 hash"))?;
                let mut out = vec![0u8; d.decrypt_len(&self.ciphertext).map_err(ssl("decrypt"))?];
                let n = d
                    .decrypt(&self.ciphertext, &mut out)
                    .map_err(ssl("EVP_PKEY_decrypt"))?;
                out.truncate(n);
                Ok(Output::Secret(out))
            }
            Op::EcdhP256 => {
                let peer = self.peer.as_ref().ok_or("no ECDH peer")?;
                let mut d = Deriver::new(key).map_err(ssl("EVP_PKEY_derive_init"))?;
                d.set_peer(peer).map_err(ssl("EVP_PKEY_derive_set_peer"))?;
                Ok(Output::Secret(
                    d.derive_to_vec().map_err(ssl("EVP_PKEY_derive"))?,
                ))
            }
        }
    }

    /// Frees the key and unloads the provider (its teardown flushes what it holds).
    fn release(&mut self) -> Result<(), String> {
        self.key = None;
        while self.providers.pop().is_some() {}
        Ok(())
    }
}
