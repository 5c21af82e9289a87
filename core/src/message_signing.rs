//! Signing a message rather than a digest. A restricted signing key (tpm2-openssl's
//! `genpkey -algorithm RSA-PSS`, attestation keys) signs only what the TPM hashed itself:
//! TPM2_Sign needs the TPMT_TK_HASHCHECK ticket of TPM2_Hash (a message of up to 1024
//! bytes, one command) or of a hash sequence (longer messages). Every other key is signed
//! through [`TpmKey::sign`] with the digest computed here, so a front end can always sign
//! the message.

use crate::attest::signature::TpmSignature;
use crate::commands::{HashCheckTicket, Tpm, MAX_HASH_BUFFER};
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::keys::{left_pad, SignScheme, Signature, TpmKey};
use crate::public_key::{FixedScheme, PublicKey};
use crate::tpm_pss::{checked_tpm_pss, tpm_can_make};
use crate::wire::{TPM_ALG_ECDSA, TPM_ALG_RSAPSS, TPM_ALG_RSASSA, TPM_RH_OWNER};

/// TPM_GENERATED_VALUE: the TPM gives no ticket for a message that starts with it, so a
/// restricted key can never be made to sign something that looks like a TPM attestation.
const TPM_GENERATED_VALUE: [u8; 4] = [0xFF, 0x54, 0x43, 0x47];

/// What [`TpmKey::sign`] says of a restricted signing key.
pub(crate) const DIGEST_ON_RESTRICTED: &str =
    "restricted signing key: the TPM must hash the message; sign the message, not a digest";

impl TpmKey {
    /// Signs `message` in `scheme`. For a restricted signing key the TPM hashes it (2 TPM
    /// commands with the Sign for up to 1024 bytes, once the key is loaded; a hash
    /// sequence for longer ones), and `scheme` must be the key's fixed scheme; any other
    /// key is signed as [`TpmKey::sign`] signs the digest computed here.
    pub fn sign_message(&self, scheme: SignScheme, message: &[u8]) -> Result<Signature> {
        if !self.public().restricted {
            let hash = scheme_hash(scheme).ok_or_else(|| {
                Error::BadInput(format!(
                    "{scheme:?} signs caller-built bytes, not a message"
                ))
            })?;
            return self.sign(scheme, &hash.digest(&[message]));
        }
        let fixed = self.restricted_scheme(scheme)?;
        if message.starts_with(&TPM_GENERATED_VALUE) {
            return Err(Error::BadInput(
                "a restricted key never signs a message that begins with TPM_GENERATED_VALUE \
                 (0xff544347, the start of the TPM's own attestations)"
                    .into(),
            ));
        }
        let digest = fixed.hash.digest(&[message]);
        let sig = self.with_key(|tpm, handle, name, auth| {
            let ticket = hash_in_tpm(tpm, fixed.hash, message, &digest)?;
            tpm.sign_with_ticket(
                handle,
                name,
                auth,
                &digest,
                fixed.alg,
                fixed.hash.tpm_alg(),
                &ticket,
            )
        })?;
        self.restricted_signature(scheme, &digest, sig)
    }

    /// The scheme a restricted key signs with, which must be the one asked for: the TPM
    /// refuses any other for it.
    fn restricted_scheme(&self, scheme: SignScheme) -> Result<FixedScheme> {
        let public = self.public();
        if !public.can_sign || public.can_decrypt {
            return Err(Error::Unsupported(
                "restricted decryption keys (storage keys) cannot sign".into(),
            ));
        }
        let asked = match (scheme, &public.key) {
            (SignScheme::Ecdsa(hash), PublicKey::Ec { .. }) => Some((TPM_ALG_ECDSA, hash)),
            (SignScheme::RsaPkcs1(hash), PublicKey::Rsa { .. }) => Some((TPM_ALG_RSASSA, hash)),
            (
                SignScheme::RsaPss {
                    hash,
                    mgf1,
                    salt_len,
                },
                PublicKey::Rsa { .. },
            ) => {
                tpm_can_make(hash, mgf1, salt_len, public.bits(), "a restricted key")?;
                Some((TPM_ALG_RSAPSS, hash))
            }
            _ => None,
        };
        let Some((alg, hash)) = asked else {
            return Err(Error::BadInput(format!(
                "{scheme:?} does not fit this restricted {} key",
                if public.is_rsa() { "RSA" } else { "EC" }
            )));
        };
        let asked = FixedScheme { alg, hash };
        match public.sign_scheme {
            Some(fixed) if fixed != asked => Err(Error::Unsupported(format!(
                "this restricted key signs only {} (the scheme its public area fixes), not {}",
                fixed.name(),
                asked.name()
            ))),
            _ => Ok(asked),
        }
    }

    /// The TPM's signature of `digest` in `scheme` (the key's fixed scheme, checked), as
    /// the front ends take it. Every signature a restricted key makes passes here; the
    /// TPM's RSA-PSS is the place for a host-side check of its salt length.
    fn restricted_signature(
        &self,
        scheme: SignScheme,
        digest: &[u8],
        sig: TpmSignature,
    ) -> Result<Signature> {
        match (scheme, sig, &self.public().key) {
            (
                SignScheme::Ecdsa(_),
                TpmSignature::Ecdsa { r, s, .. },
                PublicKey::Ec { curve, .. },
            ) => {
                let n = curve.coordinate_len();
                Ok(Signature::Ecdsa {
                    r: left_pad(&r, n),
                    s: left_pad(&s, n),
                })
            }
            (SignScheme::RsaPkcs1(_), TpmSignature::Rsassa { sig, .. }, PublicKey::Rsa { .. }) => {
                Ok(Signature::Rsa(sig))
            }
            (
                SignScheme::RsaPss { hash, salt_len, .. },
                TpmSignature::Rsapss { sig, .. },
                key @ PublicKey::Rsa { .. },
            ) => checked_tpm_pss(key, hash, digest, salt_len, sig).map(Signature::Rsa),
            (_, other, _) => Err(Error::Integrity(format!(
                "TPM2_Sign answered with an {} signature, not the {scheme:?} asked for",
                other.scheme_name()
            ))),
        }
    }
}

/// The hash a message is digested with for `scheme`; None for the raw PKCS#1 scheme.
fn scheme_hash(scheme: SignScheme) -> Option<Hash> {
    match scheme {
        SignScheme::Ecdsa(hash) | SignScheme::RsaPkcs1(hash) => Some(hash),
        SignScheme::RsaPss { hash, .. } => Some(hash),
        SignScheme::RsaPkcs1Raw => None,
    }
}

/// Has the TPM hash `message` and give the ticket of it in the owner hierarchy: TPM2_Sign
/// checks a ticket against the hierarchy the ticket names, so the owner's serves keys of
/// every hierarchy (a test signs with one of the endorsement hierarchy). TPM2_Hash for a
/// short message, a hash sequence for a longer one. The TPM's digest must be `digest`, the host's: the
/// message crosses the bus without a session, and a message altered there must not be
/// signed.
fn hash_in_tpm(
    tpm: &mut Tpm,
    hash: Hash,
    message: &[u8],
    digest: &[u8],
) -> Result<HashCheckTicket> {
    let (tpm_digest, ticket) = if message.len() <= MAX_HASH_BUFFER {
        tpm.hash(message, hash.tpm_alg(), TPM_RH_OWNER)?
    } else {
        hash_sequence(tpm, hash, message)?
    };
    if tpm_digest != digest {
        return Err(Error::Integrity(
            "the TPM hashed another message than the one to sign (altered on the bus?)".into(),
        ));
    }
    Ok(ticket)
}

/// HashSequenceStart, SequenceUpdate for every full buffer but the last, SequenceComplete
/// with the rest. A failure flushes the sequence object, unless SequenceComplete's answer
/// came back (whole but unusable): the TPM ended the sequence with it.
fn hash_sequence(tpm: &mut Tpm, hash: Hash, message: &[u8]) -> Result<(Vec<u8>, HashCheckTicket)> {
    let sequence = tpm.hash_sequence_start(hash.tpm_alg())?;
    // The last chunk goes with SequenceComplete: never empty unless the message is.
    let last_start = message.len().saturating_sub(1) / MAX_HASH_BUFFER * MAX_HASH_BUFFER;
    let (body, last) = message.split_at(last_start);
    let updated = body
        .chunks(MAX_HASH_BUFFER)
        .try_for_each(|chunk| tpm.sequence_update(sequence, chunk));
    if let Err(e) = updated {
        let _ = tpm.flush_context(sequence);
        return Err(e);
    }
    let result = tpm.sequence_complete(sequence, last, TPM_RH_OWNER);
    if matches!(&result, Err(e) if !matches!(e, Error::Integrity(_))) {
        let _ = tpm.flush_context(sequence);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hashed_scheme_names_its_hash_and_the_raw_one_none() {
        assert_eq!(
            scheme_hash(SignScheme::Ecdsa(Hash::Sha384)),
            Some(Hash::Sha384)
        );
        assert_eq!(
            scheme_hash(SignScheme::RsaPss {
                hash: Hash::Sha256,
                mgf1: Hash::Sha256,
                salt_len: 32
            }),
            Some(Hash::Sha256)
        );
        assert_eq!(scheme_hash(SignScheme::RsaPkcs1Raw), None);
    }
}
