//! The tpmkey core called in-process (what the provider and the module sit on): its
//! ceiling, with the encrypted session and without, and with either object policy.

use tpmkey::hash::Hash;
use tpmkey::{connection, KeyFile, RsaPadding, SignScheme, Signature, TpmKey};

use crate::operation::{Inputs, Op, Output};
use crate::worker::Operation;

/// How the core is configured for a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreMode {
    pub session: bool,
    pub per_operation: bool,
}

impl CoreMode {
    pub fn config(self) -> [(&'static str, &'static str); 2] {
        [
            ("session", if self.session { "on" } else { "off" }),
            (
                "objects",
                if self.per_operation {
                    "per-operation"
                } else {
                    "keep"
                },
            ),
        ]
    }
}

#[derive(Debug)]
pub struct CoreOperation {
    key: TpmKey,
    op: Op,
    digest: Vec<u8>,
    ciphertext: Vec<u8>,
    peer: (Vec<u8>, Vec<u8>),
}

fn core(e: tpmkey::Error) -> String {
    format!("tpmkey: {e}")
}

impl CoreOperation {
    /// Configures this process's connection (no TPM command yet) and reads the key file.
    pub fn new(
        tcti: &str,
        mode: CoreMode,
        file: &KeyFile,
        inputs: &Inputs,
    ) -> Result<Self, String> {
        let mut config = vec![("tcti", tcti)];
        config.extend(mode.config());
        connection::configure(&config).map_err(core)?;
        Ok(CoreOperation {
            key: TpmKey::from_key_file(file, None).map_err(core)?,
            op: inputs.op,
            digest: inputs.digest.clone(),
            ciphertext: inputs.ciphertext.clone(),
            peer: (inputs.peer_x.clone(), inputs.peer_y.clone()),
        })
    }
}

impl Operation for CoreOperation {
    /// The key loads lazily with the first operation.
    fn acquire(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn once(&mut self) -> Result<Output, String> {
        let out = match self.op {
            Op::EcdsaP256 => self.key.sign(SignScheme::Ecdsa(Hash::Sha256), &self.digest),
            Op::RsaSign => self
                .key
                .sign(SignScheme::RsaPkcs1(Hash::Sha256), &self.digest),
            Op::RsaOaep => {
                let padding = RsaPadding::Oaep {
                    hash: Hash::Sha256,
                    mgf1: Hash::Sha256,
                };
                return self
                    .key
                    .decrypt(padding, &[], &self.ciphertext)
                    .map(|p| Output::Secret(p.to_vec()))
                    .map_err(core);
            }
            Op::EcdhP256 => {
                return self
                    .key
                    .ecdh(&self.peer.0, &self.peer.1)
                    .map(|z| Output::Secret(z.to_vec()))
                    .map_err(core);
            }
        };
        match out.map_err(core)? {
            Signature::Ecdsa { r, s } => Ok(Output::EcdsaRs(r, s)),
            Signature::Rsa(sig) => Ok(Output::Rsa(sig)),
        }
    }

    /// Flushes the key, the storage key and the session.
    fn release(&mut self) -> Result<(), String> {
        connection::shutdown();
        Ok(())
    }
}
