//! `tpmkey verify` and `tpmkey makecred`: the verifier's side, pure software. Nothing here
//! opens the TPM, so it runs on a management host without one (and with the TCTI pointing
//! nowhere). Each failed check is reported on its own; any failure exits 1.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};

use tpmkey::attest::attestation::selection_text;
use tpmkey::attest::certify::{self, CertifyBundle};
use tpmkey::attest::credential::{make_credential, EkPublic};
use tpmkey::attest::quote::{self, ExpectedPcr, QuoteFile, QuoteRequest};
use tpmkey::attest::{parse_hex, AkPublic, PcrSelection};
use tpmkey::hex::hex;
use tpmkey::key_policy::{format_pcr_values, parse_pcr_values};
use tpmkey::policy::{policy_digest, PolicyPcr, Statement};
use tpmkey::{Error, Result};

use crate::io;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a certify bundle (`tpmkey attest`) and print what it proves about the key
    /// (with CertifyCreation also what its creation data says)
    Certify(CertifyArgs),
    /// Check a quote (`tpmkey quote`) and print the PCR values it proves
    Quote(QuoteArgs),
}

#[derive(Debug, ClapArgs)]
struct CertifyArgs {
    /// The certify bundle
    bundle: PathBuf,
    /// The AK's public key (PEM or DER SubjectPublicKeyInfo, or its TPM2B_PUBLIC)
    #[arg(long = "ak-pub")]
    ak_pub: PathBuf,
    /// The nonce the verifier gave the device (hex)
    #[arg(long)]
    nonce: String,
    /// The authPolicy digest the key must have (hex)
    #[arg(long = "expect-policy", value_name = "HEX")]
    expect_policy: Option<String>,
    /// The key must be bound to these PCR values (PolicyPCR): a file of lines
    /// `sha256:16=HEX`, as `tpmkey pcr read` writes it
    #[arg(long = "expect-pcr-policy", value_name = "FILE")]
    expect_pcr_policy: Option<PathBuf>,
}

#[derive(Debug, ClapArgs)]
struct QuoteArgs {
    /// The quote file
    quote: PathBuf,
    /// The AK's public key (PEM or DER SubjectPublicKeyInfo, or its TPM2B_PUBLIC)
    #[arg(long = "ak-pub")]
    ak_pub: PathBuf,
    /// The nonce the verifier gave the device (hex)
    #[arg(long)]
    nonce: String,
    /// The PCRs the verifier asked for, e.g. sha256:0,7,16 (default: whatever was quoted)
    #[arg(long)]
    pcr: Option<String>,
    /// A value a PCR must have, e.g. sha256:16=<hex>; repeatable
    #[arg(long = "expect", value_name = "BANK:PCR=HEX")]
    expect: Vec<String>,
}

#[derive(Debug, ClapArgs)]
pub struct MakecredArgs {
    /// The EK: its certificate (PEM/DER), public key (PEM) or TPM2B_PUBLIC
    #[arg(long = "ek")]
    ek: PathBuf,
    /// The AK's Name (hex, as `tpmkey ak create` prints it)
    #[arg(long = "ak-name", value_name = "HEX")]
    ak_name: String,
    /// The secret to wrap (hex, 1 to 32 bytes): the device proves itself by returning it
    #[arg(long, value_name = "HEX")]
    secret: String,
    /// Where to write the credential (tpm2-tools format)
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Certify(a) => verify_certify(a),
        Command::Quote(a) => verify_quote(a),
    }
}

fn ak_public(path: &std::path::Path) -> Result<AkPublic> {
    AkPublic::parse(&io::read_file(path)?)
}

fn verify_certify(a: CertifyArgs) -> Result<()> {
    let ak = ak_public(&a.ak_pub)?;
    let bundle = CertifyBundle::decode(&io::read_file(&a.bundle)?)?;
    let mut report = certify::verify(&bundle, &ak, &parse_hex(&a.nonce)?);
    if let Some(p) = &a.expect_policy {
        report.expect_policy(&parse_hex(p)?);
    }
    let mut expected = None;
    if let Some(file) = &a.expect_pcr_policy {
        let what = file.display().to_string();
        let text = String::from_utf8_lossy(&io::read_file(file)?).into_owned();
        let (selection, values) = parse_pcr_values(&text, &what)?;
        let pcr = PolicyPcr::from_values(selection.clone(), &values)?;
        let digest = policy_digest(&[Statement::Pcr(pcr)])?;
        report.expect_policy(&digest);
        let listed = format_pcr_values(&selection, &values);
        expected = Some((
            digest,
            format!(
                "PolicyPCR {}",
                listed.trim_end().replace('\n', ", ").to_ascii_lowercase()
            ),
        ));
    }
    if let Some(key) = &report.key {
        println!("name: {}", hex(&key.name));
        println!("attributes: {}", key.attributes);
        let policy = match &expected {
            _ if key.auth_policy.is_empty() => "none".to_string(),
            Some((digest, described)) if *digest == key.auth_policy => {
                format!("{} = {described}", key.auth_policy_hex())
            }
            _ => key.auth_policy_hex(),
        };
        println!("authPolicy: {policy}");
    }
    if let Some(c) = &report.creation {
        println!("creation: parent {}", hex(&c.parent_name));
        println!(
            "creation: parent qualified name {}",
            hex(&c.parent_qualified_name)
        );
        println!(
            "creation: PCRs {} digest {}",
            selection_text(&c.pcr_selection),
            hex(&c.pcr_digest)
        );
        println!("creation: locality 0x{:02x}", c.locality);
    }
    report.findings.check()?;
    println!("certify bundle verified");
    Ok(())
}

fn verify_quote(a: QuoteArgs) -> Result<()> {
    let ak = ak_public(&a.ak_pub)?;
    let file = QuoteFile::decode(&io::read_file(&a.quote)?)?;
    let request = QuoteRequest {
        nonce: parse_hex(&a.nonce)?,
        selection: match &a.pcr {
            Some(s) => PcrSelection::parse_list(s)?,
            None => Vec::new(),
        },
        expected: a
            .expect
            .iter()
            .map(|e| ExpectedPcr::parse(e))
            .collect::<Result<_>>()?,
    };
    let report = quote::verify(&file, &ak, &request);
    for v in &file.pcrs {
        println!(
            "{}:{} = {}",
            tpmkey::attest::attestation::bank_name(v.hash),
            v.pcr,
            hex(&v.value)
        );
    }
    report.findings.check()?;
    println!("quote verified");
    Ok(())
}

pub fn makecred(a: MakecredArgs) -> Result<()> {
    let ek = EkPublic::parse(&io::read_file(&a.ek)?)?;
    let name = parse_hex(&a.ak_name)?;
    if name.len() != 34 || name[..2] != [0x00, 0x0b] {
        return Err(Error::BadInput(format!(
            "AK Name {} is not a SHA-256 Name (000b followed by 32 bytes)",
            a.ak_name
        )));
    }
    let secret = zeroize::Zeroizing::new(parse_hex(&a.secret)?);
    let credential = make_credential(&ek, &name, &secret)?;
    io::write_atomically(&a.out, &credential.to_tpm2_tools(), false)
}
