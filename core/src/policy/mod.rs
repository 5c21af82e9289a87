//! Platform-bound key policies on the host, without a TPM: the statements TSS2 key files
//! carry (both PolicyPCR encodings found in the wild), their digests as a trial session
//! computes them, policy signer keys and signatures in TPM form, signed (authorised)
//! policies, and systemd's signed PCR policy files. Executing a policy in a policy session
//! is the command layer's part; everything it needs to send is built here.

pub mod digest;
mod json;
pub mod pcr;
pub mod signed;
pub mod signer;
pub mod signing;
pub mod statement;
pub mod systemd;

pub use digest::{policy_digest, PolicyDigest};
pub use pcr::{PcrBank, PcrSelection};
pub use signed::{
    authorization_hash, authorize_statement, signed_message, signed_policy_entry, KeyPolicy,
    PolicyRefDialect, SignedPolicy,
};
pub use signer::{SignerKey, TpmSignature};
pub use signing::PolicySigningKey;
pub use statement::{
    BodyForm, Operation, PolicyAuthorize, PolicyCounterTimer, PolicyPcr, PolicySecret, Statement,
};

#[cfg(test)]
pub(crate) use crate::hex::from_spaced as hex;
