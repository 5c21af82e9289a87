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
pub mod statement;
pub mod systemd;

pub use digest::{policy_digest, PolicyDigest};
pub use pcr::{PcrBank, PcrSelection};
pub use signed::{
    authorization_hash, authorize_statement, signed_message, signed_policy_entry, KeyPolicy,
    PolicyRefDialect, SignedPolicy,
};
pub use signer::{SignerKey, TpmSignature};
pub use statement::{
    BodyForm, Operation, PolicyAuthorize, PolicyCounterTimer, PolicyPcr, PolicySecret, Statement,
};

/// Bytes from hex text (whitespace and other non-hex characters skipped), for tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let d: Vec<u8> = s.bytes().filter(|c| c.is_ascii_hexdigit()).collect();
    d.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}
