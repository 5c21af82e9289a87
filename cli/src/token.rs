//! `tpmkey token init`: a new token in the store, optionally with a platform policy (the
//! PCR values its keys and private values will be bound to; see include/tpmkey_pkcs11.h),
//! made by the core's store as C_InitToken on the empty slot makes one, and its user PIN.
//!
//! `tpmkey token rm`: a token deleted, its NV indices (PIN and secret indices) in the TPM
//! first.
//!
//! `tpmkey token link`: an existing TPM key (a key file or a persistent handle) into a
//! PKCS#11 token of tpmkey's module. The module does the work, as for any PKCS#11
//! application: C_CreateObject of a private key with the vendor attributes of
//! include/tpmkey_pkcs11.h, which gives the token its own copy of the key under the token's
//! authValue (TPM2_ObjectChangeAuth) and stores it as a key pair; the key file or
//! persistent object keeps its own password.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use tpmkey::key_policy::{parse_pcr_values, PolicyRequest};
use tpmkey::policy::{PcrSelection, Statement};
use tpmkey::store::{Role, Store};
use tpmkey::{Error, Result, TpmKey};

use crate::io;

/// The module as the Debian package installs it (p11-kit's module directory).
#[cfg(target_arch = "x86_64")]
const DEFAULT_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpmkey_pkcs11.so";
#[cfg(target_arch = "aarch64")]
const DEFAULT_MODULE: &str = "/usr/lib/aarch64-linux-gnu/pkcs11/libtpmkey_pkcs11.so";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const DEFAULT_MODULE: &str = "/usr/lib/pkcs11/libtpmkey_pkcs11.so";

/// include/tpmkey_pkcs11.h
const CKA_TPMKEY_VENDOR: u64 = 0x8000_0000 | 0x5450_4B00;
const CKA_TPMKEY_KEY_FILE: u64 = CKA_TPMKEY_VENDOR + 1;
const CKA_TPMKEY_PERSISTENT_HANDLE: u64 = CKA_TPMKEY_VENDOR + 2;
const CKA_TPMKEY_KEY_AUTH: u64 = CKA_TPMKEY_VENDOR + 3;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a PKCS#11 token, optionally with a platform policy its keys are bound to
    Init(InitArgs),
    /// Put an existing TPM key (key file or persistent handle) into a PKCS#11 token
    Link(LinkArgs),
    /// Delete a token: its NV indices in the TPM, then its directory in the store
    Rm(RmArgs),
}

#[derive(Debug, ClapArgs)]
#[command(after_help = "Example:\n  tpmkey token rm 4a455eca1b590d9c\n\n\
    No PIN is asked (a token whose SO PIN is locked can be removed too): whoever may write\n\
    the store may delete its tokens. Its keys and values are gone for good.")]
struct RmArgs {
    /// Serial number of the token (its directory in the store; pkcs11-tool -L shows it)
    serial: String,
}

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  \
    tpmkey token init --label device --so-pin env:SO_PIN --pin env:PIN --pcr sha256:7,16\n  \
    tpmkey token init --label next --so-pin file:so --pin file:pin --pcr-values approved.pcrs\n\n\
    Keys generated in a token with a platform policy (C_GenerateKeyPair) need these PCR values\n\
    AND the user's login: in another platform state C_Sign, C_Decrypt and C_DeriveKey answer\n\
    CKR_FUNCTION_REJECTED and private data objects' CKA_VALUE CKR_ATTRIBUTE_SENSITIVE, with a\n\
    log line naming the policy; C_Login, C_GetTokenInfo and C_FindObjects work in any state.\n\
    C_InitToken on the token later keeps its platform policy.")]
struct InitArgs {
    /// Label of the new token (at most 32 bytes)
    #[arg(long, value_name = "LABEL")]
    label: String,
    /// The security officer's PIN, from file:PATH, env:VAR or - (standard input)
    #[arg(long = "so-pin", value_name = "SOURCE")]
    so_pin: String,
    /// Also set the user PIN (C_InitPIN), from file:PATH, env:VAR or -
    #[arg(long, value_name = "SOURCE")]
    pin: Option<String>,
    /// Bind the token's keys and private values to these PCRs' current values
    /// (`sha256:7,16`)
    #[arg(long = "pcr", value_name = "SELECTION")]
    pcr: Option<String>,
    /// Bind them to the PCR values in FILE instead (`sha256:16=HEX` lines, or what
    /// tpm2_pcrread prints): a state to come, for a planned update
    #[arg(long = "pcr-values", value_name = "FILE")]
    pcr_values: Option<PathBuf>,
}

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  \
    tpmkey token link --token mytoken --pin env:PIN --label web web.key\n  \
    tpmkey token link --token mytoken --pin file:/run/pin --password file:pw handle:0x81000002\n\n\
    The token gets its own copy of the key, protected by the token's PIN; the key file or\n\
    persistent object keeps its password. The CKA_ID printed selects the pair (pkcs11-tool --id).")]
struct LinkArgs {
    /// The key: a TSS2 key file, or a persistent handle (handle:0x81xxxxxx or 0x81xxxxxx)
    key: String,
    /// Label of the token (as C_InitToken set it)
    #[arg(long, value_name = "LABEL")]
    token: String,
    /// The token's user PIN, from file:PATH, env:VAR or - (standard input)
    #[arg(long, value_name = "SOURCE")]
    pin: String,
    /// The key's own password, if it has one, from file:PATH, env:VAR or -
    #[arg(long, value_name = "SOURCE")]
    password: Option<String>,
    /// CKA_LABEL of the key pair in the token (default: the key file's name or the handle)
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
    /// CKA_ID of the key pair, hex (default: SHA-1 of the public key, as for generated keys)
    #[arg(long, value_name = "HEX")]
    id: Option<String>,
    /// The PKCS#11 module (default: TPMKEY_PKCS11_MODULE, then the packaged module's path)
    #[arg(long, value_name = "PATH")]
    module: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        TokenCommand::Init(a) => init(a),
        TokenCommand::Link(a) => link(a),
        TokenCommand::Rm(a) => remove(a),
    }
}

fn remove(args: RmArgs) -> Result<()> {
    let store = Store::new(tpmkey::store::default_root(
        &tpmkey::connection::current_config()?,
    ));
    store.remove_token(&args.serial)?;
    println!(
        "token {} removed from {}",
        args.serial,
        store.root().display()
    );
    Ok(())
}

fn init(args: InitArgs) -> Result<()> {
    let pcr_values = match &args.pcr_values {
        Some(p) => {
            let text = std::fs::read(p).map_err(|e| Error::io(p.display(), e))?;
            Some(parse_pcr_values(
                &String::from_utf8_lossy(&text),
                &p.display().to_string(),
            )?)
        }
        None => None,
    };
    let request = PolicyRequest {
        pcrs: args.pcr.as_deref().map(PcrSelection::parse).transpose()?,
        pcr_values,
        ..PolicyRequest::default()
    };
    let policy = (!request.is_empty())
        .then(|| request.statements())
        .transpose()?;
    let so_pin = io::read_password(&args.so_pin)?;
    let pin = args.pin.as_deref().map(io::read_password).transpose()?;
    let store = Store::new(tpmkey::store::default_root(
        &tpmkey::connection::current_config()?,
    ));
    let token = store.create_token_with_policy(&args.label, &so_pin, policy.as_deref())?;
    if let Some(pin) = &pin {
        let secret = token.login(Role::SecurityOfficer, &so_pin)?;
        token.init_user_pin(&secret, pin)?;
    }
    let bound = match &policy {
        Some(st) => format!(", platform policy {}", Statement::describe_all(st)),
        None => String::new(),
    };
    println!(
        "token {:?} (serial {}) in {}{bound}",
        token.label(),
        token.serial(),
        store.root().display()
    );
    Ok(())
}

fn p11(e: cryptoki::error::Error) -> Error {
    match e {
        cryptoki::error::Error::Pkcs11(rv, function) => {
            Error::BadInput(format!("PKCS#11 {function}: {rv:?} ({rv})"))
        }
        e => Error::BadInput(format!("PKCS#11: {e}")),
    }
}

fn link(args: LinkArgs) -> Result<()> {
    let (source, default_label) = match parse_handle(&args.key) {
        Some(handle) => (
            Attribute::VendorDefined((
                AttributeType::VendorDefined(CKA_TPMKEY_PERSISTENT_HANDLE),
                u64::from(handle).to_ne_bytes().to_vec(),
            )),
            format!("handle-0x{handle:08x}"),
        ),
        None => {
            let path = PathBuf::from(&args.key);
            let data = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
            tpmkey::KeyFile::from_pem_or_der(&data)?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                Attribute::VendorDefined((AttributeType::VendorDefined(CKA_TPMKEY_KEY_FILE), data)),
                stem,
            )
        }
    };
    let pin = io::read_password(&args.pin)?;
    let pin = std::str::from_utf8(&pin)
        .map_err(|_| Error::BadInput("the PIN is not UTF-8".into()))?
        .to_string();
    let password = args
        .password
        .as_deref()
        .map(io::read_password)
        .transpose()?;
    let id = args
        .id
        .as_deref()
        .map(|h| {
            tpmkey::hex::unhex(h)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::BadInput(format!("--id {h:?} is not hex")))
        })
        .transpose()?;
    let label = args.label.unwrap_or(default_label);

    // The module is another copy of the core in this process: it reads the TPM and the
    // store from the environment, so the TPM this command was given goes there.
    let config = tpmkey::connection::current_config()?;
    std::env::set_var("TPMKEY_TCTI", &config.tcti);
    tpmkey::connection::shutdown();
    let module = args
        .module
        .or_else(|| std::env::var_os("TPMKEY_PKCS11_MODULE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
    let p = Pkcs11::new(&module)
        .map_err(|e| Error::BadInput(format!("PKCS#11 module {}: {e}", module.display())))?;
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(p11)?;
    let result = (|| {
        let slot = p
            .get_slots_with_token()
            .map_err(p11)?
            .into_iter()
            .find(|s| p.get_token_info(*s).is_ok_and(|t| t.label() == args.token))
            .ok_or_else(|| Error::BadInput(format!("no token labelled {:?}", args.token)))?;
        let session = p.open_rw_session(slot).map_err(p11)?;
        session
            .login(UserType::User, Some(&AuthPin::new(pin.into())))
            .map_err(p11)?;
        let mut template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Token(true),
            Attribute::Label(label.clone().into_bytes()),
            source,
        ];
        if let Some(id) = id {
            template.push(Attribute::Id(id));
        }
        if let Some(pw) = &password {
            template.push(Attribute::VendorDefined((
                AttributeType::VendorDefined(CKA_TPMKEY_KEY_AUTH),
                pw.to_vec(),
            )));
        }
        let key = session.create_object(&template).map_err(p11)?;
        let id = match session.get_attributes(key, &[AttributeType::Id]) {
            Ok(mut a) => match a.pop() {
                Some(Attribute::Id(id)) => tpmkey::hex::hex(&id),
                _ => String::new(),
            },
            Err(e) => return Err(p11(e)),
        };
        let _ = session.logout();
        println!(
            "linked {} into token {:?} as {label:?} (CKA_ID {id})",
            args.key, args.token
        );
        Ok(())
    })();
    let _ = p.finalize();
    result
}

fn parse_handle(s: &str) -> Option<u32> {
    TpmKey::parse_handle_uri(s)
        .ok()
        .or_else(|| tpmkey::config::parse_handle(s))
}
