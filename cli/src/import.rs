//! `tpmkey import`: an existing PEM private key into the TPM (TPM2_Import through the
//! salted session, with an inner wrapper), or with `--parent-pub` wrapped without a TPM
//! into an importable key file that the target TPM imports at first use. The crypto is the
//! core's (`tpmkey::import`); this is the command line around it.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use zeroize::Zeroizing;

use tpmkey::import::{self, SoftwareKey};
use tpmkey::{Error, Result};

use crate::io;
use crate::keygen::parse_handle;

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  \
    tpmkey import -o server.key server-soft.pem && shred -u server-soft.pem\n  \
    tpmkey import --parent-pub srk.pub -o device.key soft.pem     (no TPM needed)\n\n\
    With a TPM, the key travels only inside TPM2_Import's wrappers, whose inner key the\n\
    session encrypts. Without one (--parent-pub), the file written is importable: the\n\
    target TPM imports it once at first use and keeps the loadable result in its state\n\
    directory. Imported keys show as imported (sensitiveDataOrigin clear) in tpmkey inspect.")]
pub struct Args {
    /// The private key (PEM: PKCS#8, SEC1 or PKCS#1; EC P-256/P-384, RSA 2048/3072/4096)
    key: PathBuf,
    /// Where to write the key file (PEM, mode 0600)
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: PathBuf,
    /// The imported key's password in the TPM, from file:PATH, env:VAR or - (standard
    /// input); without it the key has none and is not subject to dictionary-attack lockout
    #[arg(long = "password", value_name = "SOURCE")]
    password: Option<String>,
    /// Parent handle: online, a persistent storage key (default: the configured parent, else
    /// the storage primary); with --parent-pub, the handle the parent has on the target
    /// (default 0x40000001, the storage primary)
    #[arg(long, value_parser = parse_handle, value_name = "HANDLE")]
    parent: Option<u32>,
    /// Wrap offline for this parent public key (TPM2B_PUBLIC as tpm2_readpublic -o writes
    /// it, or PEM) and write an importable key file; no TPM is used
    #[arg(long = "parent-pub", value_name = "FILE")]
    parent_pub: Option<PathBuf>,
    /// Import with the sign attribute only (no decryption or key agreement). RSA-PSS is
    /// then made by the TPM with the salt the TPM chooses; tpmkey refuses a salt other
    /// than the one asked for (the default, sign and decrypt, encodes PSS on the host)
    #[arg(long = "sign-only")]
    sign_only: bool,
}

pub fn run(args: Args) -> Result<()> {
    let pem =
        Zeroizing::new(std::fs::read(&args.key).map_err(|e| Error::io(args.key.display(), e))?);
    let mut key = SoftwareKey::from_pem(&pem)?;
    if args.sign_only {
        key = key.sign_only();
    }
    let password = args
        .password
        .as_deref()
        .map(io::read_password)
        .transpose()?;
    let password = password.as_deref().map(|p| p.as_slice());
    let file = match &args.parent_pub {
        Some(path) => {
            let data = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
            let parent_key = import::parent_public(&data)?;
            import::wrap_offline(
                &key,
                password,
                &parent_key,
                args.parent.unwrap_or(0x4000_0001),
            )?
        }
        None => import::import(&key, password, args.parent)?,
    };
    io::write_atomically(&args.out, file.to_pem().as_bytes(), true)
}
