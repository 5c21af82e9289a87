//! The options that bind a new key or sealed file to the platform state, shared by
//! `keygen` and `seal` and read into the core's `PolicyRequest` (the provider's `-pkeyopt
//! pcr:…` options build the same request).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use tpmkey::key_policy::{parse_duration, parse_pcr_values, PolicyRequest};
use tpmkey::policy::{PcrSelection, PolicyRefDialect, SignerKey};
use tpmkey::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyRef {
    /// A random 32-byte nonce per key (openssl_tpm2_engine): a signed policy is for one key
    Nonce,
    /// Empty (systemd, GRUB, pcr-oracle): a signed policy serves every key of the signer
    Empty,
}

#[derive(Debug, Default, Args)]
pub struct PolicyOptions {
    /// Usable only while these PCRs keep their current values (`sha256:7,16`)
    #[arg(long = "pcr", value_name = "SELECTION")]
    pub pcr: Option<String>,
    /// Usable only while the PCRs have the values in FILE (`sha256:16=HEX` lines, or what
    /// tpm2_pcrread prints): a state to come, for a planned update
    #[arg(long = "pcr-values", value_name = "FILE")]
    pub pcr_values: Option<PathBuf>,
    /// Usable in any platform state this key (PEM public key) signs a policy for
    /// (`tpmkey policy sign`, or systemd-measure's JSON with `tpmkey policy add --systemd`)
    #[arg(long = "signer", value_name = "PUB.PEM")]
    pub signer: Option<PathBuf>,
    /// policyRef of the signed policies [default: nonce]
    #[arg(long = "policy-ref", value_enum, value_name = "KIND")]
    pub policy_ref: Option<PolicyRef>,
    /// Usable only until the TPM's clock has advanced this long (`90d`, `12h`, `30m`)
    #[arg(long = "expires", value_name = "DURATION")]
    pub expires: Option<String>,
    /// Usable for this many more boots (TPM resets) only
    #[arg(long = "boots", value_name = "N")]
    pub boots: Option<u32>,
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::io(p.display(), e))
}

/// PCR values from FILE, as `--pcr-values` and `tpmkey policy sign` take them.
pub fn pcr_values_file(p: &Path) -> Result<(PcrSelection, Vec<Vec<u8>>)> {
    parse_pcr_values(
        &String::from_utf8_lossy(&read(p)?),
        &p.display().to_string(),
    )
}

impl PolicyOptions {
    pub fn request(&self) -> Result<PolicyRequest> {
        Ok(PolicyRequest {
            pcrs: self.pcr.as_deref().map(PcrSelection::parse).transpose()?,
            pcr_values: self
                .pcr_values
                .as_deref()
                .map(pcr_values_file)
                .transpose()?,
            signer: match &self.signer {
                Some(p) => Some(SignerKey::from_pem(&read(p)?)?),
                None => None,
            },
            policy_ref: self.policy_ref.map(|r| match r {
                PolicyRef::Nonce => PolicyRefDialect::EngineNonce,
                PolicyRef::Empty => PolicyRefDialect::Empty,
            }),
            expires_ms: self.expires.as_deref().map(parse_duration).transpose()?,
            boots: self.boots,
        })
    }
}
