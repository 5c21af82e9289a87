//! Signatures in the core's tests: an ECDSA signature made through the core and checked
//! with OpenSSL (software only), and a policy signer's offline signing.

use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::sign::{Signer, Verifier};
use tpmkey::hash::Hash;
use tpmkey::policy::{policy_digest, signed_message, signed_policy_entry, SignerKey, Statement};
use tpmkey::{SignScheme, Signature, TpmKey};

use super::openssl_public;

/// Signs a fixed SHA-256 digest with `key` (P-256) and panics when the signature does not
/// verify: an error is the core's, a wrong signature accepted is a test failure.
pub fn sign_and_verify(key: &TpmKey) -> tpmkey::Result<()> {
    let digest = [0x5au8; 32];
    let sig = key.sign(SignScheme::Ecdsa(Hash::Sha256), &digest)?;
    let Signature::Ecdsa { r, s } = sig else {
        panic!("not ECDSA")
    };
    let sig = openssl::ecdsa::EcdsaSig::from_private_components(
        openssl::bn::BigNum::from_slice(&r).unwrap(),
        openssl::bn::BigNum::from_slice(&s).unwrap(),
    )
    .unwrap();
    let ec = openssl_public(&key.public().key).ec_key().unwrap();
    assert!(
        sig.verify(&digest, &ec).unwrap(),
        "a signature that does not verify was accepted"
    );
    Ok(())
}

/// A P-256 policy signer: its private key and the core's view of its public key.
pub fn p256_signer() -> (PKey<Private>, SignerKey) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let spki = key.public_key_to_der().unwrap();
    (key, SignerKey::from_spki_der(&spki).unwrap())
}

/// What a publisher does offline: sign the PolicyPCR digest of predicted values.
pub fn sign_policy(
    signer_key: &PKey<Private>,
    signer: &SignerKey,
    policy_ref: &[u8],
    statements: &[Statement],
    name: &str,
) -> tpmkey::keyfile::TpmAuthPolicy {
    let approved = policy_digest(statements).unwrap();
    let mut s = Signer::new(MessageDigest::sha256(), signer_key).unwrap();
    s.update(&signed_message(&approved, policy_ref)).unwrap();
    let der = s.sign_to_vec().unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), signer_key).unwrap();
    v.update(&signed_message(&approved, policy_ref)).unwrap();
    assert!(v.verify(&der).unwrap());
    let sig = signer.signature(&der, Hash::Sha256).unwrap();
    signed_policy_entry(Some(name), statements, signer, policy_ref, sig).unwrap()
}
