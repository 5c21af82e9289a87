//! `tpmkey seal` and `tpmkey unseal`: a secret file kept by the TPM, as a TSS2 sealed-data
//! key file (OID 2.23.133.10.1.5). Up to 128 bytes the secret is the sealed object itself,
//! as every TSS2 reader expects; beyond, an envelope (`tpmkey::envelope`). `--for` writes
//! what another consumer reads: the Linux kernel's trusted keys, or GRUB / pcr-oracle.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args as ClapArgs, ValueEnum};
use zeroize::Zeroizing;

use tpmkey::envelope::SealedSecret;
use tpmkey::key_policy::PolicyRequest;
use tpmkey::policy::{BodyForm, PolicyRefDialect, Statement};
use tpmkey::sealed::MAX_SEALED_LEN;
use tpmkey::{Error, KeyFile, Result};

use crate::io;
use crate::keygen::parse_handle;
use crate::policy_options::PolicyOptions;

/// The smallest payload the kernel's trusted keys accept (MIN_KEY_SIZE).
const KERNEL_MIN_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consumer {
    /// Linux trusted keys (`keyctl add trusted NAME "load HEX"`): DER, only type,
    /// emptyAuth, a persistent parent, pubkey and privkey; 32 to 128 bytes
    Kernel,
    /// GRUB's tpm2_key_protector and pcr-oracle: no password (emptyAuth), at most 128 bytes
    Grub,
}

#[derive(Debug, ClapArgs)]
pub struct SealArgs {
    /// The secret to seal (`-` for standard input)
    #[arg(short = 'i', long = "in", value_name = "FILE")]
    input: PathBuf,
    /// Where to write the sealed file (mode 0600, written whole or not at all)
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: PathBuf,
    /// A password for unsealing, from file:PATH, env:VAR or - (standard input); wrong
    /// passwords count toward the TPM's dictionary-attack lockout
    #[arg(long = "password", value_name = "SOURCE")]
    password: Option<String>,
    /// Write for another consumer than tpmkey
    #[arg(long = "for", value_name = "CONSUMER")]
    consumer: Option<Consumer>,
    /// Parent: a persistent storage key handle (default: the configured parent, else the
    /// storage primary; `--for kernel` needs a persistent one)
    #[arg(long, value_parser = parse_handle)]
    parent: Option<u32>,
    #[command(flatten)]
    policy: PolicyOptions,
}

#[derive(Debug, ClapArgs)]
pub struct UnsealArgs {
    /// The sealed file (PEM or DER; tpmkey's, openssl_tpm2_engine's seal_tpm2_data, the
    /// kernel's)
    file: PathBuf,
    /// Write the secret here (mode 0600) instead of standard output
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
    /// The password the file was sealed with, from file:PATH, env:VAR or - (standard input)
    #[arg(long = "password", value_name = "SOURCE")]
    password: Option<String>,
}

fn read_input(input: &PathBuf) -> Result<Zeroizing<Vec<u8>>> {
    let mut data = Zeroizing::new(Vec::new());
    if input.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| Error::io("standard input", e))?;
    } else {
        std::fs::File::open(input)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| Error::io(input.display(), e))?;
    }
    Ok(data)
}

/// The policy the options ask for; GRUB and pcr-oracle sign with an empty policyRef.
fn policy_request(args: &SealArgs) -> Result<PolicyRequest> {
    let mut request = args.policy.request()?;
    if args.consumer == Some(Consumer::Grub) {
        request.policy_ref = Some(PolicyRefDialect::Empty);
    }
    Ok(request)
}

/// What `consumer` cannot read, refused before the TPM is asked for anything.
fn check_consumer(
    consumer: Option<Consumer>,
    len: usize,
    password: bool,
    parent: Option<u32>,
    policy: bool,
) -> Result<()> {
    match consumer {
        None => Ok(()),
        Some(Consumer::Kernel) => {
            if policy {
                return Err(Error::BadInput(
                    "--for kernel: the kernel reads no policy fields (only type, emptyAuth, \
                     parent, pubkey, privkey): drop --pcr, --pcr-values, --signer, --expires"
                        .into(),
                ));
            }
            if !(KERNEL_MIN_LEN..=MAX_SEALED_LEN).contains(&len) {
                return Err(Error::BadInput(format!(
                    "--for kernel: the kernel's trusted keys hold {KERNEL_MIN_LEN} to \
                     {MAX_SEALED_LEN} bytes, the secret has {len}"
                )));
            }
            if parent.is_none_or(|p| p >> 24 != 0x81) {
                return Err(Error::BadInput(
                    "--for kernel: the kernel loads under a persistent parent: give \
                     --parent 0x81xxxxxx (its keyhandle=)"
                        .into(),
                ));
            }
            Ok(())
        }
        Some(Consumer::Grub) => {
            if len > MAX_SEALED_LEN {
                return Err(Error::BadInput(format!(
                    "--for grub: GRUB unseals at most {MAX_SEALED_LEN} bytes, the secret has {len}"
                )));
            }
            if password {
                return Err(Error::BadInput(
                    "--for grub: GRUB and pcr-oracle read only files without a password \
                     (emptyAuth)"
                        .into(),
                ));
            }
            Ok(())
        }
    }
}

pub fn seal(args: SealArgs) -> Result<()> {
    let data = read_input(&args.input)?;
    if data.is_empty() {
        return Err(Error::BadInput(format!(
            "{}: nothing to seal (the input is empty)",
            args.input.display()
        )));
    }
    let request = policy_request(&args)?;
    check_consumer(
        args.consumer,
        data.len(),
        args.password.is_some(),
        args.parent,
        !request.is_empty(),
    )?;
    let mut statements = if request.is_empty() {
        Vec::new()
    } else {
        request.statements()?
    };
    if args.consumer == Some(Consumer::Grub) {
        // GRUB's tpm2_key_protector reads PolicyPCR as the command's body.
        for s in &mut statements {
            if let Statement::Pcr(p) = s {
                p.form = BodyForm::Command;
            }
        }
    }
    let password = args
        .password
        .as_deref()
        .map(io::read_password)
        .transpose()?;
    let auth = password
        .as_deref()
        .map(|p| p.as_slice())
        .unwrap_or_default();
    // A password can be guessed: the TPM's lockout counts wrong ones. No password, nothing
    // to guess: the object is noDA.
    let sealed =
        SealedSecret::seal_with_policy(&data, auth, password.is_some(), args.parent, statements)?;
    let file = KeyFile {
        empty_auth: password.is_none(),
        ..sealed.key_file()
    };
    let bytes = match args.consumer {
        Some(Consumer::Kernel) => file.to_der(),
        _ => file.to_pem().into_bytes(),
    };
    io::write_atomically(&args.out, &bytes, true)
}

pub fn unseal(args: UnsealArgs) -> Result<()> {
    let text = std::fs::read(&args.file).map_err(|e| Error::io(args.file.display(), e))?;
    let file = KeyFile::from_pem_or_der(&text)?;
    let sealed = SealedSecret::from_key_file(&file)?;
    let password = args
        .password
        .as_deref()
        .map(io::read_password)
        .transpose()?;
    if password.is_none() && !file.empty_auth {
        return Err(Error::BadInput(format!(
            "{} was sealed with a password: give --password SOURCE",
            args.file.display()
        )));
    }
    let auth = password
        .as_deref()
        .map(|p| p.as_slice())
        .unwrap_or_default();
    let secret = sealed.unseal(auth, &[])?;
    match &args.out {
        Some(out) => io::write_atomically(out, &secret, true),
        None => io::write_output(None, &secret),
    }
}
