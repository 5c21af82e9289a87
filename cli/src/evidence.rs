//! `tpmkey attest`, `tpmkey quote` and `tpmkey acme-attest`: evidence the AK signs for a
//! verifier. `attest` certifies that a key lives in this TPM (TPM2_Certify, or with its
//! creation file TPM2_CertifyCreation); `quote` signs
//! PCR values (TPM2_Quote); both take the verifier's nonce and write the files `tpmkey
//! verify` reads. `acme-attest` prints the ACME device-attest-01 attestation object.

use std::path::{Path, PathBuf};

use clap::Args as ClapArgs;

use tpmkey::attest::creation::CreationRecord;
use tpmkey::attest::{parse_hex, PcrSelection};
use tpmkey::{KeyFile, Result, TpmKey};

use crate::{ak, io};

#[derive(Debug, ClapArgs)]
pub struct AttestArgs {
    /// The key to certify (TSS2 PRIVATE KEY file)
    key: PathBuf,
    /// The attestation key file
    #[arg(long)]
    ak: PathBuf,
    /// The verifier's nonce (hex)
    #[arg(long)]
    nonce: String,
    /// The key's password, from file:PATH, env:VAR or - (standard input)
    #[arg(long = "password", value_name = "SOURCE")]
    password: Option<String>,
    /// The key's creation file (`tpmkey keygen --creation-data`): certify with
    /// TPM2_CertifyCreation, which also proves the parent and PCRs it was created under
    #[arg(long = "creation", value_name = "FILE")]
    creation: Option<PathBuf>,
    /// Where to write the certify bundle (PEM; default: standard output)
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

#[derive(Debug, ClapArgs)]
pub struct QuoteArgs {
    /// The attestation key file
    #[arg(long)]
    ak: PathBuf,
    /// PCRs to quote, e.g. sha256:0,7,11,16
    #[arg(long)]
    pcr: String,
    /// The verifier's nonce (hex)
    #[arg(long)]
    nonce: String,
    /// Where to write the quote (PEM; default: standard output)
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

#[derive(Debug, ClapArgs)]
pub struct SrkArgs {
    /// The attestation key file
    #[arg(long)]
    ak: PathBuf,
    /// The verifier's nonce (hex)
    #[arg(long)]
    nonce: String,
    /// Where to write the certify bundle (PEM; default: standard output)
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

#[derive(Debug, ClapArgs)]
pub struct AcmeArgs {
    /// The key the CSR is for (TSS2 PRIVATE KEY file)
    key: PathBuf,
    /// The attestation key file
    #[arg(long)]
    ak: PathBuf,
    /// The AK certificate, then its intermediates (PEM)
    #[arg(long = "ak-chain", value_name = "PEM")]
    ak_chain: PathBuf,
    /// The challenge's key authorization: token "." JWK thumbprint
    #[arg(long = "key-authorization", value_name = "TEXT")]
    key_authorization: String,
    /// The key's password, from file:PATH, env:VAR or - (standard input)
    #[arg(long = "password", value_name = "SOURCE")]
    password: Option<String>,
}

fn load_key(path: &Path, password: Option<&str>) -> Result<TpmKey> {
    let file = KeyFile::from_pem_or_der(&io::read_file(path)?)?;
    let password = password.map(io::read_password).transpose()?;
    TpmKey::from_key_file(&file, password.as_deref().map(|p| p.as_slice()))
}

pub fn attest(args: AttestArgs) -> Result<()> {
    let nonce = parse_hex(&args.nonce)?;
    let ak = ak::load(&args.ak)?;
    let key = load_key(&args.key, args.password.as_deref())?;
    let bundle = match &args.creation {
        Some(path) => {
            let creation = CreationRecord::decode(&io::read_file(path)?)
                .map_err(|e| tpmkey::Error::BadInput(format!("{}: {e}", path.display())))?;
            ak.certify_creation(&key, &creation, &nonce)?
        }
        None => ak.certify(&key, &nonce)?,
    };
    io::write_output(args.out.as_deref(), bundle.to_pem().as_bytes())
}

pub fn quote(args: QuoteArgs) -> Result<()> {
    let nonce = parse_hex(&args.nonce)?;
    let selection = PcrSelection::parse_list(&args.pcr)?;
    let ak = ak::load(&args.ak)?;
    let quote = ak.quote(&selection, &nonce)?;
    io::write_output(args.out.as_deref(), quote.to_pem().as_bytes())
}

pub fn acme_attest(args: AcmeArgs) -> Result<()> {
    let ak = ak::load(&args.ak)?;
    let chain = io::read_certificates(&args.ak_chain)?;
    let key = load_key(&args.key, args.password.as_deref())?;
    let obj = ak.acme_attestation(&key, &args.key_authorization, chain)?;
    println!("{}", obj.to_base64url());
    Ok(())
}

pub fn certify_storage_key(args: SrkArgs) -> Result<()> {
    let ak = ak::load(&args.ak)?;
    let bundle = ak.certify_storage_key(&parse_hex(&args.nonce)?)?;
    io::write_output(args.out.as_deref(), bundle.to_pem().as_bytes())
}
