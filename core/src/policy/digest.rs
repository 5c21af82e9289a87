//! Policy digests computed on the host: the update each statement makes to a trial
//! session's digest (TPM 2.0 Part 3), so that a key's authPolicy, an approved policy for a
//! signer, or the expected value of PolicyGetDigest are known without a TPM.

use super::pcr::PcrSelection;
use super::statement::{cc, PolicyAuthorize, PolicyCounterTimer, Statement};
use crate::error::{Error, Result};
use crate::hash::Hash;

/// A policy session's digest, starting from zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDigest {
    hash: Hash,
    value: Vec<u8>,
}

impl Default for PolicyDigest {
    fn default() -> Self {
        PolicyDigest::new(Hash::Sha256)
    }
}

impl PolicyDigest {
    /// A fresh digest for a session whose hash is `hash` (tpmkey's sessions use SHA-256).
    pub fn new(hash: Hash) -> PolicyDigest {
        PolicyDigest {
            hash,
            value: vec![0; hash.len()],
        }
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }

    pub fn value(&self) -> &[u8] {
        &self.value
    }

    pub fn into_value(self) -> Vec<u8> {
        self.value
    }

    fn extend(&mut self, parts: &[&[u8]]) {
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        all.push(&self.value);
        all.extend_from_slice(parts);
        self.value = self.hash.digest(&all);
    }

    /// D' = H(D ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ pcrDigest), pcrDigest being the
    /// session hash of the PCR values in selection order.
    pub fn policy_pcr(&mut self, selection: &PcrSelection, pcr_digest: &[u8]) -> Result<()> {
        if pcr_digest.len() != self.hash.len() {
            return Err(Error::BadInput(format!(
                "PolicyPCR {selection}: a PCR digest of {} bytes, the session hash needs {} \
                 (an empty digest means \"current values\": compute it from PCR values)",
                pcr_digest.len(),
                self.hash.len()
            )));
        }
        self.extend(&[
            &cc::POLICY_PCR.to_be_bytes(),
            &selection.marshal(),
            pcr_digest,
        ]);
        Ok(())
    }

    /// PolicyPCR from the PCR values themselves (selection order).
    pub fn policy_pcr_values(
        &mut self,
        selection: &PcrSelection,
        values: &[Vec<u8>],
    ) -> Result<()> {
        let digest = selection.pcr_digest(values, self.hash)?;
        self.policy_pcr(selection, &digest)
    }

    /// D' = H(D ‖ TPM_CC_PolicyAuthValue); PolicyPassword gives the same.
    pub fn policy_auth_value(&mut self) {
        self.extend(&[&cc::POLICY_AUTH_VALUE.to_be_bytes()]);
    }

    /// D' = H(D ‖ TPM_CC_PolicyLocality ‖ locality)
    pub fn policy_locality(&mut self, locality: u8) {
        self.extend(&[&cc::POLICY_LOCALITY.to_be_bytes(), &[locality]]);
    }

    /// args = H(operandB ‖ offset ‖ operation); D' = H(D ‖ TPM_CC_PolicyCounterTimer ‖ args)
    pub fn policy_counter_timer(&mut self, c: &PolicyCounterTimer) {
        let args = self.hash.digest(&[
            &c.operand_b,
            &c.offset.to_be_bytes(),
            &(c.operation as u16).to_be_bytes(),
        ]);
        self.extend(&[&cc::POLICY_COUNTER_TIMER.to_be_bytes(), &args]);
    }

    /// D' = H(H(D ‖ CC ‖ Name) ‖ policyRef): PolicySecret and PolicySigned's shape.
    fn name_and_ref(&mut self, code: u32, name: &[u8], policy_ref: &[u8]) {
        self.extend(&[&code.to_be_bytes(), name]);
        self.extend(&[policy_ref]);
    }

    /// PolicySecret with the authorising object's Name.
    pub fn policy_secret(&mut self, object_name: &[u8], policy_ref: &[u8]) {
        self.name_and_ref(cc::POLICY_SECRET, object_name, policy_ref);
    }

    /// PolicyAuthorize: the digest is reset, then D' = H(H(0 ‖ CC ‖ keySign.Name) ‖ policyRef).
    /// (At run time the TPM first checks the digest so far against the approved policy.)
    pub fn policy_authorize(&mut self, key_sign_name: &[u8], policy_ref: &[u8]) {
        self.value = vec![0; self.hash.len()];
        self.name_and_ref(cc::POLICY_AUTHORIZE, key_sign_name, policy_ref);
    }

    /// PolicyOR: D' = H(0 ‖ CC ‖ d1 ‖ ... ‖ dn), 2 to 8 branch digests of the session hash.
    /// (At run time the TPM first checks that the digest so far is one of them.)
    pub fn policy_or(&mut self, branches: &[Vec<u8>]) -> Result<()> {
        if !(2..=8).contains(&branches.len()) {
            return Err(Error::BadInput(format!(
                "PolicyOR of {} branches (2 to 8)",
                branches.len()
            )));
        }
        if let Some(b) = branches.iter().find(|b| b.len() != self.hash.len()) {
            return Err(Error::BadInput(format!(
                "PolicyOR branch digest of {} bytes, the session hash needs {}",
                b.len(),
                self.hash.len()
            )));
        }
        self.value = vec![0; self.hash.len()];
        let mut parts: Vec<&[u8]> = Vec::with_capacity(branches.len());
        let code = cc::POLICY_OR.to_be_bytes();
        parts.push(&code);
        parts.extend(branches.iter().map(Vec::as_slice));
        self.extend(&parts);
        Ok(())
    }

    /// D' = H(D ‖ TPM_CC_PolicyCommandCode ‖ commandCode)
    pub fn policy_command_code(&mut self, command_code: u32) {
        self.extend(&[
            &cc::POLICY_COMMAND_CODE.to_be_bytes(),
            &command_code.to_be_bytes(),
        ]);
    }

    /// D' = H(D ‖ TPM_CC_PolicyNvWritten ‖ writtenSet): the NV index the command acts on
    /// has (or has not) been written.
    pub fn policy_nv_written(&mut self, written: bool) {
        self.extend(&[&cc::POLICY_NV_WRITTEN.to_be_bytes(), &[u8::from(written)]]);
    }

    /// Applies one statement as a trial session would.
    pub fn apply(&mut self, statement: &Statement) -> Result<()> {
        match statement {
            Statement::Pcr(p) => self.policy_pcr(&p.selection, &p.pcr_digest)?,
            Statement::AuthValue | Statement::Password => self.policy_auth_value(),
            Statement::Locality(l) => self.policy_locality(*l),
            Statement::CounterTimer(c) => self.policy_counter_timer(c),
            Statement::Secret(s) => self.policy_secret(&s.object_name, &s.policy_ref),
            Statement::Authorize(PolicyAuthorize {
                key_sign,
                policy_ref,
                ..
            }) => {
                let name = super::statement::public_name(key_sign)?;
                self.policy_authorize(&name, policy_ref);
            }
            Statement::Or(list) => self.policy_or(list)?,
            Statement::CommandCode(c) => self.policy_command_code(*c),
        }
        Ok(())
    }

    /// The digest of `statements` from zero.
    pub fn of(hash: Hash, statements: &[Statement]) -> Result<Vec<u8>> {
        let mut d = PolicyDigest::new(hash);
        for s in statements {
            d.apply(s)?;
        }
        Ok(d.into_value())
    }
}

/// The SHA-256 policy digest of `statements` (an object's authPolicy, or the approved
/// policy a signer signs).
pub fn policy_digest(statements: &[Statement]) -> Result<Vec<u8>> {
    PolicyDigest::of(Hash::Sha256, statements)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::statement::{BodyForm, Operation, PolicyPcr, PolicySecret};
    use super::*;
    use crate::policy::hex;

    fn pcr16_zero() -> Statement {
        let selection = PcrSelection::parse("sha256:16").unwrap();
        let pcr_digest = selection.pcr_digest(&[vec![0; 32]], Hash::Sha256).unwrap();
        Statement::Pcr(PolicyPcr {
            selection,
            pcr_digest,
            form: BodyForm::Engine,
        })
    }

    // Vectors of platform-trust.md §1.2 (SHA-256, from 32 zero bytes; verified on swtpm).
    #[test]
    fn policy_pcr_vector() {
        assert_eq!(
            policy_digest(&[pcr16_zero()]).unwrap(),
            hex("bff2d58e9813f97cefc14f72ad8133bc7092d652b7c877959254af140c841f36")
        );
        let mut d = PolicyDigest::default();
        d.policy_pcr_values(&PcrSelection::parse("sha256:16").unwrap(), &[vec![0; 32]])
            .unwrap();
        assert_eq!(
            d.value(),
            hex("bff2d58e9813f97cefc14f72ad8133bc7092d652b7c877959254af140c841f36")
        );
    }

    #[test]
    fn policy_auth_value_and_password_vector() {
        let want = hex("8fcd2169ab92694e0c633f1ab772842b8241bbc20288981fc7ac1eddc1fddb0e");
        assert_eq!(policy_digest(&[Statement::AuthValue]).unwrap(), want);
        assert_eq!(policy_digest(&[Statement::Password]).unwrap(), want);
    }

    #[test]
    fn policy_locality_vector() {
        assert_eq!(
            policy_digest(&[Statement::Locality(1)]).unwrap(),
            hex("ddee6af14bf3c4e8127ced87bcf9a57e1c0c8ddb5e67735c8505f96f07b8dbb8")
        );
    }

    #[test]
    fn policy_counter_timer_vector() {
        let c = PolicyCounterTimer {
            operand_b: 0x10_0000u64.to_be_bytes().to_vec(),
            offset: 8,
            operation: Operation::UnsignedLt,
            form: BodyForm::Engine,
        };
        assert_eq!(
            policy_digest(&[Statement::CounterTimer(c)]).unwrap(),
            hex("ac59bd8736cebec8d676ce0f3e48ebdce67284ee00fc3e970a649c08b75804a6")
        );
    }

    #[test]
    fn policy_pcr_then_auth_value_vector() {
        assert_eq!(
            policy_digest(&[pcr16_zero(), Statement::AuthValue]).unwrap(),
            hex("195146253886976ba9784dcbb42c70095c3af977b902eee23254f5ccc5ba3a56")
        );
    }

    #[test]
    fn ek_policy_secret_vector() {
        // PolicySecret(TPM_RH_ENDORSEMENT): a permanent handle's Name is the handle.
        let s = Statement::Secret(PolicySecret {
            handle_hint: 0x4000_000B,
            object_name: 0x4000_000Bu32.to_be_bytes().to_vec(),
            policy_ref: Vec::new(),
        });
        assert_eq!(
            policy_digest(&[s]).unwrap(),
            hex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa")
        );
    }

    #[test]
    fn policy_auth_value_twice_vector_of_systemd_and_authorize_reset() {
        // systemd test-tpm2.c calculate_policy_auth_value: applied twice.
        let mut d = PolicyDigest::default();
        d.policy_auth_value();
        d.policy_auth_value();
        assert_eq!(
            d.value(),
            hex("759ebd5ed65100e0b4aa2d04b4b789c2672d92ecc9cdda4b5fa16a303132e008")
        );
        // PolicyAuthorize resets the digest: what came before does not count.
        let name = [0u8, 0x0B]
            .iter()
            .chain([7u8; 32].iter())
            .copied()
            .collect::<Vec<u8>>();
        let mut fresh = PolicyDigest::default();
        fresh.policy_authorize(&name, &[1, 2]);
        d.policy_authorize(&name, &[1, 2]);
        assert_eq!(d, fresh);
        let inner = Hash::Sha256.digest(&[&[0; 32], &[0, 0, 1, 0x6A], &name]);
        assert_eq!(fresh.value(), Hash::Sha256.digest(&[&inner, &[1, 2]]));
    }

    #[test]
    fn policy_pcr_vectors_of_systemd() {
        // systemd test-tpm2.c calculate_policy_pcr: PCRs 4, 7, 8 of sha256, applied twice.
        let sel = PcrSelection::parse("sha256:4,7,8").unwrap();
        let values = [
            hex("368f85b3013041dfe203faaa364f00b07c5da7b1e5f1dbf2efb06fa6b9bd92de"),
            hex("aa1154c9e0a774854ccbed4c8ce7e9b906b3d700a1a8db1772d0341a62dbe51b"),
            hex("cfde439a2c06af3479ca6bdc60429b90553d65300c5cfcc40004a08c6b5ad81a"),
        ];
        let mut d = PolicyDigest::default();
        d.policy_pcr_values(&sel, &values).unwrap();
        assert_eq!(
            d.value(),
            hex("76532a0e16f7e6bf6b02918c11f75d99d729fab0cc81d0df2c4284a2c4fe6e05")
        );
        d.policy_pcr_values(&sel, &values).unwrap();
        assert_eq!(
            d.value(),
            hex("97e64bcabb64c1fa4b726528644926c8029f5b4458b0575c98c04fe225629a0b")
        );
    }

    #[test]
    fn policy_or_and_command_code() {
        let a = vec![1u8; 32];
        let b = vec![2u8; 32];
        let mut d = PolicyDigest::default();
        d.policy_auth_value();
        d.policy_or(&[a.clone(), b.clone()]).unwrap();
        let want = Hash::Sha256.digest(&[&[0; 32], &[0, 0, 1, 0x71], &a, &b]);
        assert_eq!(d.value(), want);
        assert!(d.policy_or(std::slice::from_ref(&a)).is_err());
        assert!(d.policy_or(&[a.clone(), vec![1; 20]]).is_err());
        let mut d = PolicyDigest::default();
        d.policy_command_code(0x15D);
        let want = Hash::Sha256.digest(&[&[0; 32], &[0, 0, 1, 0x6C], &[0, 0, 1, 0x5D]]);
        assert_eq!(d.value(), want);
    }

    #[test]
    fn empty_pcr_digest_is_refused_with_a_reason() {
        let s = Statement::Pcr(PolicyPcr {
            selection: PcrSelection::parse("sha256:16").unwrap(),
            pcr_digest: Vec::new(),
            form: BodyForm::Command,
        });
        let e = policy_digest(&[s]).unwrap_err().to_string();
        assert!(
            e.contains("PolicyPCR sha256:16") && e.contains("current values"),
            "{e}"
        );
    }
}
