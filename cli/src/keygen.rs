//! `tpmkey keygen`: a key created inside the TPM, written as a TSS2 PRIVATE KEY file,
//! optionally bound to the platform state (PCRs, a policy signer, an expiry). There is no
//! software fallback: if the TPM cannot make the key, nothing is written.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use tpmkey::{KeySpec, Result, TpmKey};

use crate::io;
use crate::policy_options::PolicyOptions;

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  \
    tpmkey keygen -t p256 -o tls.key\n  \
    tpmkey keygen -t p256 --pcr sha256:7,11,16 -o tls.key        # only in this platform state\n  \
    tpmkey keygen -t rsa3072 --signer vendor.pub --policy-ref empty -o tls.key\n                                             # in any state vendor.pub signs\n  \
    tpmkey keygen --pcr sha256:16 --password file:pw -o k.key   # the state AND the password")]
pub struct Args {
    /// Key type: p256, p384, rsa2048 or rsa3072
    #[arg(short = 't', long = "type", default_value = "p256")]
    key_type: String,
    /// Where to write the key file (PEM, mode 0600)
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
    /// The key's password, from file:PATH, env:VAR or - (standard input); without it the
    /// key has none and is not subject to dictionary-attack lockout
    #[arg(long = "password", value_name = "SOURCE")]
    password: Option<String>,
    /// Parent: a persistent storage key handle (default: the configured parent, else the
    /// storage primary)
    #[arg(long, value_parser = parse_handle)]
    parent: Option<u32>,
    /// Also write what the TPM recorded of the key's creation (parent, PCRs, locality,
    /// creation ticket) here, for `tpmkey attest --creation` (TPM2_CertifyCreation)
    #[arg(long = "creation-data", value_name = "FILE")]
    creation_data: Option<PathBuf>,
    #[command(flatten)]
    policy: PolicyOptions,
}

pub fn parse_handle(s: &str) -> std::result::Result<u32, String> {
    tpmkey::config::parse_handle(s)
        .ok_or_else(|| format!("\"{s}\" is not a TPM handle (0x81xxxxxx)"))
}

pub fn run(args: Args) -> Result<()> {
    let spec = KeySpec::parse(&args.key_type)?;
    let password = args
        .password
        .as_deref()
        .map(io::read_password)
        .transpose()?;
    let password = password.as_deref().map(|p| p.as_slice());
    let request = args.policy.request()?;
    let key = if request.is_empty() {
        TpmKey::generate(spec, password, args.parent)?
    } else {
        TpmKey::generate_with_policy(spec, password, args.parent, None, request.statements()?)?
    };
    let file = key.key_file().ok_or_else(|| {
        tpmkey::Error::Unsupported("writing a key file for a persistent key".into())
    })?;
    io::write_atomically(&args.out, file.to_pem().as_bytes(), true)?;
    if let Some(path) = &args.creation_data {
        let creation = key
            .creation()
            .ok_or_else(|| tpmkey::Error::Integrity("the TPM returned no creation data".into()))?;
        io::write_atomically(path, creation.to_pem().as_bytes(), false)?;
    }
    Ok(())
}
