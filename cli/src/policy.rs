//! `tpmkey policy`: the policies of keys and sealed files bound to the platform state.
//! `sign` is the publisher's side (offline, no TPM with `--pcr-values`); `add`, `ls` and
//! `rm` edit a key or sealed file's signed policies; `check` asks this TPM whether the
//! platform state satisfies a key's policy now, without using the key (so without a
//! dictionary-attack count).

use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Subcommand};

use tpmkey::key_policy::{limits, parse_duration, read_clock, TpmClock};
use tpmkey::keyfile::{signed_policies_from_pem, signed_policies_to_pem, TpmAuthPolicy};
use tpmkey::policy::{
    policy_digest, signed_policy_entry, systemd, KeyPolicy, PcrSelection, PolicyPcr,
    PolicySigningKey, SignedPolicy, Statement,
};
use tpmkey::{Error, KeyFile, Result, TpmKey};

use crate::io;
use crate::policy_options::pcr_values_file;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Sign a policy for a platform state (the publisher's side; no TPM with --pcr-values)
    Sign(SignArgs),
    /// Add signed policies to a key or sealed file (checked before they are added)
    Add(AddArgs),
    /// List a key or sealed file's policy and signed policies
    Ls {
        /// The key or sealed file
        file: PathBuf,
    },
    /// Remove a signed policy by name (or 1-based position, as listed)
    Rm {
        /// The key or sealed file (rewritten in place)
        file: PathBuf,
        /// The signed policy's name or position
        which: String,
    },
    /// Say whether this TPM's platform state satisfies a key's policy now (exit 4 if not)
    Check {
        /// The key file
        file: PathBuf,
        /// The key's password, from file:PATH, env:VAR or - (standard input)
        #[arg(long = "password", value_name = "SOURCE")]
        password: Option<String>,
    },
}

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  \
    # publisher, for the state after an update (values predicted, no TPM):\n  \
    tpmkey policy sign --signer-key vendor.key --pcr-values v2.pcrs --policy-ref empty \\\n      \
    --name v2 -o v2.policy\n  \
    # device:\n  \
    tpmkey policy add tls.key v2.policy\n  \
    tpmkey policy add tls.key --systemd /run/systemd/tpm2-pcr-signature.json")]
struct SignArgs {
    /// The signer's private key (PEM: P-256, P-384 or RSA)
    #[arg(long = "signer-key", value_name = "KEY.PEM")]
    signer_key: PathBuf,
    /// Approve the PCR values in FILE (`sha256:16=HEX` lines, or tpm2_pcrread's output)
    #[arg(long = "pcr-values", value_name = "FILE", conflicts_with = "pcr")]
    pcr_values: Option<PathBuf>,
    /// Approve these PCRs' values on this TPM now
    #[arg(long = "pcr", value_name = "SELECTION")]
    pcr: Option<String>,
    /// For this key's policyRef (keys made with --policy-ref nonce); without it the
    /// policyRef is empty and the policy serves every key of the signer
    #[arg(long = "key", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Approved only until the device's TPM clock has advanced this long from --clock
    #[arg(long = "expires", value_name = "DURATION")]
    expires: Option<String>,
    /// Approved for this many more boots of the device from --reset-count
    #[arg(long = "boots", value_name = "N")]
    boots: Option<u32>,
    /// The device's TPM clock in ms (`tpm2_readclock`), the base of --expires (default: this
    /// TPM's)
    #[arg(long = "clock", value_name = "MS")]
    clock: Option<u64>,
    /// The device's TPM resetCount, the base of --boots (default: this TPM's)
    #[arg(long = "reset-count", value_name = "N")]
    reset_count: Option<u32>,
    /// The policy's name, as `policy ls` shows it and `policy rm` takes it
    #[arg(long = "name")]
    name: String,
    /// Where to write the signed policy (PEM "TPMKEY SIGNED POLICY")
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, ClapArgs)]
struct AddArgs {
    /// The key or sealed file (rewritten in place; its key blobs are not touched)
    file: PathBuf,
    /// Signed policies (`tpmkey policy sign` output)
    policies: Vec<PathBuf>,
    /// systemd's signed PCR policies (`systemd-measure sign` JSON,
    /// /run/systemd/tpm2-pcr-signature.json): the entries of the key's signer
    #[arg(long = "systemd", value_name = "JSON")]
    systemd: Option<PathBuf>,
    /// Name of the systemd entries (numbered when there are several)
    #[arg(long = "name", default_value = "systemd")]
    name: String,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        PolicyCommand::Sign(a) => sign(a),
        PolicyCommand::Add(a) => add(a),
        PolicyCommand::Ls { file } => list(&file),
        PolicyCommand::Rm { file, which } => {
            let mut key = read_key_file(&file)?;
            let removed = key.remove_signed_policy(&which)?;
            write_key_file(&file, &key)?;
            eprintln!(
                "removed signed policy {}",
                removed.name.as_deref().unwrap_or(&which)
            );
            Ok(())
        }
        PolicyCommand::Check { file, password } => check(&file, password.as_deref()),
    }
}

fn read_key_file(path: &Path) -> Result<KeyFile> {
    let data = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    KeyFile::from_pem_or_der(&data)
}

fn write_key_file(path: &Path, key: &KeyFile) -> Result<()> {
    io::write_atomically(path, key.to_pem().as_bytes(), true)
}

fn sign(a: SignArgs) -> Result<()> {
    let pem = std::fs::read(&a.signer_key).map_err(|e| Error::io(a.signer_key.display(), e))?;
    let signing = PolicySigningKey::from_pem(&pem)?;
    let signer = signing.signer()?;
    let mut statements = match (&a.pcr_values, &a.pcr) {
        (Some(file), _) => {
            let (selection, values) = pcr_values_file(file)?;
            vec![Statement::Pcr(PolicyPcr::from_values(selection, &values)?)]
        }
        (None, Some(sel)) => {
            let selection = PcrSelection::parse(sel)?;
            let values = tpmkey::keys::read_pcrs(&selection)?;
            vec![Statement::Pcr(PolicyPcr::from_values(selection, &values)?)]
        }
        (None, None) => Vec::new(),
    };
    let expires_ms = a.expires.as_deref().map(parse_duration).transpose()?;
    if expires_ms.is_some() || a.boots.is_some() {
        let now = match (a.clock, a.reset_count) {
            (Some(clock_ms), Some(reset_count)) => TpmClock {
                clock_ms,
                reset_count,
            },
            _ => {
                let tpm = read_clock()?;
                TpmClock {
                    clock_ms: a.clock.unwrap_or(tpm.clock_ms),
                    reset_count: a.reset_count.unwrap_or(tpm.reset_count),
                }
            }
        };
        statements.extend(limits(now, expires_ms, a.boots)?);
    }
    if statements.is_empty() {
        return Err(Error::BadInput(
            "nothing to approve: give --pcr-values, --pcr, --expires or --boots".into(),
        ));
    }
    let policy_ref = match &a.key {
        Some(path) => {
            let key = read_key_file(path)?;
            let policy = KeyPolicy::from_key_file(&key)?
                .and_then(|p| p.authorize)
                .ok_or_else(|| {
                    Error::BadInput(format!(
                        "{}: the key takes no signed policies (made without --signer)",
                        path.display()
                    ))
                })?;
            if policy.signer()? != signer {
                return Err(Error::BadInput(format!(
                    "{}: the key takes policies of another signer",
                    path.display()
                )));
            }
            policy.policy_ref
        }
        None => Vec::new(),
    };
    let approved = policy_digest(&statements)?;
    let signature = signing.sign_policy(&approved, &policy_ref)?;
    let entry = signed_policy_entry(Some(&a.name), &statements, &signer, &policy_ref, signature)?;
    io::write_atomically(&a.out, signed_policies_to_pem(&[entry]).as_bytes(), false)
}

fn add(a: AddArgs) -> Result<()> {
    let mut key = read_key_file(&a.file)?;
    let authorize = KeyPolicy::from_key_file(&key)?
        .and_then(|p| p.authorize)
        .ok_or_else(|| {
            Error::BadInput(format!(
                "{}: takes no signed policies (made without --signer)",
                a.file.display()
            ))
        })?;
    let signer = authorize.signer()?;
    let mut entries: Vec<TpmAuthPolicy> = Vec::new();
    for path in &a.policies {
        let pem = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
        entries.extend(signed_policies_from_pem(&pem, &path.display().to_string())?);
    }
    if let Some(path) = &a.systemd {
        let json = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
        let all = systemd::parse(&json)?;
        let mine = systemd::for_signer(&all, &signer);
        if mine.is_empty() {
            return Err(Error::BadInput(format!(
                "{}: no entry signed by the key's signer (pkfp)",
                path.display()
            )));
        }
        for (i, e) in mine.iter().enumerate() {
            let name = if mine.len() == 1 {
                a.name.clone()
            } else {
                format!("{}-{}", a.name, i + 1)
            };
            // The signature is over `pol`: check it now, the TPM would only at use.
            let sig = e.tpm_signature(&signer)?;
            if !signer.verify_digest(
                &tpmkey::policy::authorization_hash(&e.approved_policy, &[]),
                &sig,
            )? {
                return Err(Error::BadInput(format!(
                    "{} entry {}: the signature does not verify with the key's signer",
                    path.display(),
                    i + 1
                )));
            }
            entries.push(e.to_auth_policy(Some(&name), &signer)?);
        }
    }
    if entries.is_empty() {
        return Err(Error::BadInput(
            "no signed policies given (files, or --systemd JSON)".into(),
        ));
    }
    for entry in entries {
        let label = entry.name.clone().unwrap_or_else(|| "(unnamed)".into());
        let decoded = SignedPolicy::decode(&entry, &format!("signed policy {label}"))?;
        if decoded.authorize.key_sign != authorize.key_sign
            || decoded.authorize.policy_ref != authorize.policy_ref
        {
            return Err(Error::BadInput(format!(
                "signed policy {label}: signed by another key or for another policyRef than \
                 this file takes"
            )));
        }
        if let Some(approved) = &decoded.approved_policy {
            let a_hash = decoded.authorization_hash(approved);
            if !signer.verify_digest(&a_hash, &decoded.authorize.signature)? {
                return Err(Error::BadInput(format!(
                    "signed policy {label}: the signature does not verify with the signer"
                )));
            }
        }
        key.add_signed_policy(entry)?;
        eprintln!("added signed policy {label}");
    }
    KeyPolicy::from_key_file(&key)?;
    write_key_file(&a.file, &key)
}

fn list(path: &Path) -> Result<()> {
    let key = read_key_file(path)?;
    let mut out = String::new();
    match KeyPolicy::from_key_file(&key)? {
        None => out.push_str("no policy: usable with its password alone\n"),
        Some(policy) => {
            if let Some(a) = &policy.authorize {
                out.push_str(&format!("policy: {}\n", Statement::Authorize(a.clone())));
            }
            for s in &policy.statements {
                out.push_str(&format!("policy: {s}\n"));
            }
            for (i, s) in policy.signed.iter().enumerate() {
                let what: Vec<String> = s.statements.iter().map(|s| s.to_string()).collect();
                out.push_str(&format!("signed {}: {}\n", s.label(i), what.join(" AND ")));
            }
            if policy.authorize.is_some() && policy.signed.is_empty() {
                out.push_str("no signed policies yet: unusable until one is added\n");
            }
        }
    }
    io::write_output(None, out.as_bytes())
}

fn check(path: &Path, password: Option<&str>) -> Result<()> {
    let file = read_key_file(path)?;
    let password = password.map(io::read_password).transpose()?;
    let key = TpmKey::from_key_file(&file, password.as_deref().map(|p| p.as_slice()))?;
    if key.policy().is_none() {
        return io::write_output(None, b"no policy: usable with its password alone\n");
    }
    key.check_policy()?;
    io::write_output(None, b"the platform state satisfies the key's policy\n")
}
