//! `tpmkey`: what `openssl` and `pkcs11-tool` cannot express. Each subcommand lives in its
//! own module and is a thin layer over the core; this file parses the command line, applies
//! the global options and turns errors into messages and exit codes.

mod ak;
mod ek;
mod evidence;
mod exit;
mod global;
mod import;
mod inspect;
mod io;
mod json;
mod keygen;
mod list;
mod manpage;
mod pcr;
mod policy;
mod policy_options;
mod seal;
mod token;
mod verify;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tpmkey",
    version,
    about = "TPM-resident keys, platform policies, sealed secrets and attestation",
    after_help = "Examples:\n  \
        tpmkey keygen -t p256 -o device.key\n  \
        tpmkey seal --password file:pw -i psk.bin -o psk.tpm && tpmkey unseal --password file:pw psk.tpm\n  \
        TPMKEY_TCTI=swtpm:host=127.0.0.1,port=2321 tpmkey keygen -t rsa3072 --password-file pw -o tls.key\n\n\
        The TPM is the one the libraries use: TPMKEY_TCTI, or `tcti` in tpmkey.conf(5).\n\
        Exit codes: 0 success, 1 error, 2 usage, 3 wrong password, 4 platform state does not\n\
        satisfy the key's policy, 5 TPM unreachable or in lockout."
)]
struct Cli {
    #[command(flatten)]
    global: global::Options,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a key in the TPM and write it as a TSS2 PRIVATE KEY file
    Keygen(keygen::Args),
    /// Show what a key file holds and whether this TPM loads it
    Inspect(inspect::Args),
    /// List persistent objects (and NV indices) and what each is
    List(list::Args),
    /// Import a PEM private key into the TPM, or wrap it for a TPM that is not present
    Import(import::Args),
    /// PKCS#11 tokens: make one (with a platform policy), put existing TPM keys into them
    Token(token::Args),
    /// Print the tpmkey(1) manual page (roff), generated from this command line
    #[command(hide = true)]
    Manpage,
    /// Policies of keys and sealed files: sign (publisher), add, ls, rm, check
    Policy(policy::Args),
    /// PCR values, in the form --pcr-values reads
    Pcr(pcr::Args),
    /// Seal a secret file to this TPM (TSS2 sealed-data file)
    Seal(seal::SealArgs),
    /// Print or write the secret of a sealed file
    Unseal(seal::UnsealArgs),
    /// The endorsement key: its public key and the manufacturer's certificate
    Ek(ek::Args),
    /// Attestation keys: create one, export its public key
    Ak(ak::Args),
    /// Certify that a key lives in this TPM (TPM2_Certify by the AK)
    Attest(evidence::AttestArgs),
    /// Sign PCR values with the AK (TPM2_Quote)
    Quote(evidence::QuoteArgs),
    /// Certify the storage key that salts sessions with the AK
    ///
    /// Once `tpmkey verify certify` accepts the bundle, set the storage key's Name as
    /// storage-key-name in tpmkey.conf.
    SrkCertify(evidence::SrkArgs),
    /// Print the ACME device-attest-01 attestation object (base64url CBOR) for a key
    AcmeAttest(evidence::AcmeArgs),
    /// Verifier: wrap a secret for an AK in the TPM of an EK (MakeCredential, no TPM used)
    Makecred(verify::MakecredArgs),
    /// Verifier: check certify bundles and quotes (no TPM used)
    Verify(verify::Args),
}

fn run(cli: Cli) -> tpmkey::Result<()> {
    cli.global.apply()?;
    match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::List(args) => list::run(args),
        Command::Import(args) => import::run(args),
        Command::Token(args) => token::run(args),
        Command::Manpage => {
            print!("{}", manpage::render(&Cli::command()));
            Ok(())
        }
        Command::Policy(args) => policy::run(args),
        Command::Pcr(args) => pcr::run(args),
        Command::Seal(args) => seal::seal(args),
        Command::Unseal(args) => seal::unseal(args),
        Command::Ek(args) => ek::run(args),
        Command::Ak(args) => ak::run(args),
        Command::Attest(args) => evidence::attest(args),
        Command::Quote(args) => evidence::quote(args),
        Command::SrkCertify(args) => evidence::certify_storage_key(args),
        Command::AcmeAttest(args) => evidence::acme_attest(args),
        Command::Makecred(args) => verify::makecred(args),
        Command::Verify(args) => verify::run(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(cli);
    tpmkey::connection::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpmkey: {e}");
            exit::code(&e)
        }
    }
}
