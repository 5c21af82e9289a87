//! `tpmkey ek`: the endorsement key the TPM derives from the TCG default template, and the
//! manufacturer's certificate for it from NV, checked to certify that very key and, with
//! `--ca`, to chain to the manufacturer's roots.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};

use tpmkey::attest::chain::verify_chain;
use tpmkey::endorsement::{self, EkType};
use tpmkey::keyfile::pem_encode;
use tpmkey::Result;

use crate::io;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the EK public key (PEM SubjectPublicKeyInfo)
    Show(Which),
    /// Write the EK certificate (PEM) after checking that it certifies the TPM's EK
    Cert(Cert),
    /// List the EK certificates at the TCG indices (low and high range), each checked
    /// against the EK the TPM derives
    List,
}

#[derive(Debug, ClapArgs)]
struct Cert {
    #[command(flatten)]
    which: Which,
    /// Trusted root certificates (PEM) the EK certificate must chain to; repeatable
    #[arg(long = "ca", value_name = "PEM")]
    ca: Vec<PathBuf>,
    /// Intermediate CA certificates (PEM) that may complete the chain; repeatable
    #[arg(long = "intermediate", value_name = "PEM")]
    intermediate: Vec<PathBuf>,
}

#[derive(Debug, ClapArgs)]
struct Which {
    /// rsa (RSA 2048, NV 0x01c00002), ecc (P-256, 0x01c0000a), rsa-high (0x01c00012),
    /// p256-high (0x01c00014) or p384 (P-384, 0x01c00016)
    #[arg(short = 't', long = "type", default_value = "rsa")]
    ek_type: String,
    /// Output file (default: standard output)
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::List => {
            for kind in EkType::ALL {
                println!(
                    "0x{:08x} {}: {}",
                    kind.certificate_index(),
                    kind.name(),
                    list_entry(kind)
                );
            }
            Ok(())
        }
        Command::Show(w) => {
            let kind = EkType::parse(&w.ek_type)?;
            let ek = endorsement::public(kind)?;
            let pem = pem_encode("PUBLIC KEY", &ek.key.spki_der());
            io::write_output(w.out.as_deref(), pem.as_bytes())
        }
        Command::Cert(c) => {
            let kind = EkType::parse(&c.which.ek_type)?;
            let der = endorsement::certificate(kind)?;
            let ek = endorsement::public(kind)?;
            endorsement::check_certificate(&der, &ek.key)?;
            if !c.ca.is_empty() {
                let all = |files: &[PathBuf]| -> Result<Vec<Vec<u8>>> {
                    Ok(files
                        .iter()
                        .map(|f| io::read_certificates(f))
                        .collect::<Result<Vec<_>>>()?
                        .concat())
                };
                verify_chain(&der, &all(&c.intermediate)?, &all(&c.ca)?)?;
            }
            io::write_output(
                c.which.out.as_deref(),
                pem_encode("CERTIFICATE", &der).as_bytes(),
            )
        }
    }
}

/// What `ek list` says of one index: absent, or whether the certificate certifies the EK.
fn list_entry(kind: EkType) -> String {
    let der = match endorsement::certificate(kind) {
        Ok(der) => der,
        Err(tpmkey::Error::BadInput(_)) => return "no certificate".into(),
        Err(e) => return format!("unreadable: {e}"),
    };
    match endorsement::public(kind).and_then(|ek| endorsement::check_certificate(&der, &ek.key)) {
        Ok(()) => format!("certificate of {} bytes, certifies the EK", der.len()),
        Err(e) => format!("{e}"),
    }
}
