//! `tpmkey ak`: the attestation key. `create` makes one and writes the AK file (no secret in
//! it: the TPM re-derives the key from its endorsement seed) and the public key a verifier
//! enrols; both print the AK's Name, which MakeCredential binds the credential to.
//! `activate` answers the verifier's credential, proving the AK lives with the EK.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};

use tpmkey::attest::credential::Credential;
use tpmkey::attestation_key::AttestationKey;
use tpmkey::endorsement::EkType;
use tpmkey::hex::hex;
use tpmkey::keyfile::pem_encode;
use tpmkey::{KeySpec, Result};

use crate::io;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an attestation key and write the AK file; prints its Name
    Create(Create),
    /// Write an AK's public key (PEM) for a verifier; prints its Name
    Public(Public),
    /// Recover a verifier's secret (ActivateCredential with the EK): proves the AK lives
    /// in the EK's TPM; prints the secret (hex)
    Activate(Activate),
    /// Remove a persistent AK (`ak create --persist`) from the TPM
    Evict(Evict),
}

#[derive(Debug, ClapArgs)]
struct Evict {
    /// The AK file
    ak: PathBuf,
}

#[derive(Debug, ClapArgs)]
struct Activate {
    /// The AK file
    ak: PathBuf,
    /// The credential from the verifier (`tpmkey makecred`, `tpm2_makecredential`)
    credential: PathBuf,
    /// The EK the credential was made for: rsa, ecc, rsa-high or p256-high
    #[arg(long = "ek", default_value = "rsa")]
    ek: String,
}

#[derive(Debug, ClapArgs)]
struct Create {
    /// p256 (ECDSA P-256 SHA-256) or rsa2048 (RSASSA SHA-256)
    #[arg(short = 't', long = "type", default_value = "p256")]
    key_type: String,
    /// Where to write the AK file
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
    /// Also write the AK's public key (PEM) here
    #[arg(long = "public", value_name = "FILE")]
    public: Option<PathBuf>,
    /// Store the AK at this persistent handle (0x81xxxxxx): quotes are then TPM2_Quote
    /// and TPM2_PCR_Read only, without re-deriving the AK
    #[arg(long, value_name = "HANDLE", value_parser = crate::keygen::parse_handle)]
    persist: Option<u32>,
}

#[derive(Debug, ClapArgs)]
struct Public {
    /// The AK file
    ak: PathBuf,
    /// Output file (default: standard output)
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Create(c) => {
            let spec = KeySpec::parse(&c.key_type)?;
            let ak = match c.persist {
                Some(handle) => AttestationKey::create_persistent(spec, handle)?,
                None => AttestationKey::create(spec)?,
            };
            io::write_atomically(&c.out, ak.to_pem().as_bytes(), false)?;
            if let Some(p) = &c.public {
                io::write_atomically(p, public_pem(&ak)?.as_bytes(), false)?;
            }
            println!("name: {}", hex(&ak.public().name));
            Ok(())
        }
        Command::Activate(a) => {
            let ak = load(&a.ak)?;
            let credential = Credential::from_tpm2_tools(&io::read_file(&a.credential)?)?;
            let secret = ak.activate_credential(EkType::parse(&a.ek)?, &credential)?;
            println!("{}", hex(&secret));
            Ok(())
        }
        Command::Evict(e) => {
            let ak = load(&e.ak)?;
            let handle = ak.persistent_handle().ok_or_else(|| {
                tpmkey::Error::BadInput(format!(
                    "{}: the AK is not persistent (nothing to evict)",
                    e.ak.display()
                ))
            })?;
            tpmkey::keys::evict_persistent(handle)
        }
        Command::Public(p) => {
            let ak = load(&p.ak)?;
            io::write_output(p.out.as_deref(), public_pem(&ak)?.as_bytes())?;
            if p.out.is_some() {
                println!("name: {}", hex(&ak.public().name));
            }
            Ok(())
        }
    }
}

fn public_pem(ak: &AttestationKey) -> Result<String> {
    Ok(pem_encode("PUBLIC KEY", &ak.public().key.spki_der()))
}

pub fn load(path: &std::path::Path) -> Result<AttestationKey> {
    AttestationKey::decode(&io::read_file(path)?)
        .map_err(|e| tpmkey::Error::BadInput(format!("{}: {e}", path.display())))
}
