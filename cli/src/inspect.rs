//! `tpmkey inspect KEY`: what a TSS2 key file holds (type, algorithm, attributes, parent,
//! emptyAuth, authPolicy, the decoded `policy [1]` statements and `authPolicy [3]` signed
//! policies, whether the key was imported) and whether this TPM loads it now, and if not,
//! why. Everything but the last line comes from the file alone, so it prints even when
//! the TPM cannot be reached.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use tpmkey::attest::certify::{CertifiedKey, KeyAttributes};
use tpmkey::hex::hex;
use tpmkey::keyfile::{KeyFileType, TpmPolicy};
use tpmkey::policy::{SignedPolicy, Statement};
use tpmkey::public_key::PublicKey;
use tpmkey::response_code::TPM_RC_LOCKOUT;
use tpmkey::{Error, KeyFile, Result};

use crate::json::Json;

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  \
    tpmkey inspect device.key\n  \
    tpmkey inspect --json device.key | jq .load\n\n\
    Exit status: 0 when the key loads on this TPM, 1 when the TPM refuses it (the reason is\n\
    printed), 5 when the TPM cannot be reached (the file's part is still printed).")]
pub struct Args {
    /// The key file (TSS2 PRIVATE KEY, PEM or DER)
    key: PathBuf,
    /// Print JSON (fields listed in tpmkey(1)) instead of text
    #[arg(long)]
    json: bool,
    /// Do not try to load the key (no TPM is contacted)
    #[arg(long)]
    no_load: bool,
}

/// TPM 2.0 Part 2 TPM_RC values (format one, without the handle/parameter number).
const RC_ASYMMETRIC: u32 = 0x081;
const RC_ATTRIBUTES: u32 = 0x082;
const RC_VALUE: u32 = 0x084;
const RC_TYPE: u32 = 0x08A;
const RC_HANDLE: u32 = 0x08B;
const RC_AUTH_FAIL: u32 = 0x08E;
const RC_SIZE: u32 = 0x095;
const RC_KEY: u32 = 0x09C;
const RC_INTEGRITY: u32 = 0x09F;
const RC_BAD_AUTH: u32 = 0x0A2;

/// One statement as shown: decoded, or the reason it is not.
struct ShownStatement {
    command_code: u32,
    text: std::result::Result<String, String>,
}

struct ShownSigned {
    name: Option<String>,
    decoded: std::result::Result<(Vec<String>, String, String), String>,
}

enum LoadCheck {
    NotTried(String),
    Loads,
    Refused { reason: String, error: Error },
}

pub fn run(args: Args) -> Result<()> {
    let data = std::fs::read(&args.key).map_err(|e| Error::io(args.key.display(), e))?;
    let file = KeyFile::from_pem_or_der(&data)?;
    let public = CertifiedKey::parse(&file.public)
        .map_err(|e| Error::KeyFile(format!("public area: {e}")))?;
    let load = if args.no_load {
        LoadCheck::NotTried("--no-load".into())
    } else {
        check_load(&file)
    };
    let report = Report {
        path: args.key.display().to_string(),
        file: &file,
        public: &public,
        policy: file.policy.as_deref().map(show_statements),
        signed: file
            .signed_policies()
            .iter()
            .enumerate()
            .map(show_signed)
            .collect(),
        load: &load,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    match load {
        LoadCheck::Refused { error, .. } => Err(error),
        _ => Ok(()),
    }
}

fn check_load(file: &KeyFile) -> LoadCheck {
    if file.key_type == KeyFileType::Importable {
        return LoadCheck::NotTried(
            "an importable key: TPM2_Import under its parent turns it into a loadable key".into(),
        );
    }
    match tpmkey::keys::check_blob_loads(file.parent, &file.private, &file.public) {
        Ok(()) => LoadCheck::Loads,
        Err(error) => LoadCheck::Refused {
            reason: load_failure(&error, file.parent),
            error,
        },
    }
}

/// Why TPM2_Load (or reaching the parent) failed, in words.
fn load_failure(e: &Error, parent: u32) -> String {
    let rc = match e {
        Error::Tcti { .. } => return format!("the TPM cannot be reached ({e})"),
        Error::Integrity(m) if m.contains("another Name") => {
            return "the TPM computed another Name: the public part does not belong to the \
                    private part"
                .into()
        }
        Error::Tpm { rc, .. } => *rc,
        _ => return e.to_string(),
    };
    match rc.base() {
        RC_INTEGRITY => "the TPM rejects the private part (integrity check failed): the key was \
                         made by another TPM, under another parent, or before this TPM was cleared"
            .into(),
        RC_HANDLE => format!("the parent 0x{parent:08x} does not exist in this TPM"),
        RC_AUTH_FAIL | RC_BAD_AUTH => {
            format!("the authorization for the parent 0x{parent:08x} (parent-auth) is wrong")
        }
        TPM_RC_LOCKOUT => "the TPM is in dictionary-attack lockout".into(),
        RC_ASYMMETRIC | RC_ATTRIBUTES | RC_VALUE | RC_TYPE | RC_SIZE | RC_KEY => {
            format!("the key blob is damaged or does not fit its parent 0x{parent:08x} ({rc})")
        }
        _ => e.to_string(),
    }
}

fn show_statements(policies: &[TpmPolicy]) -> Vec<ShownStatement> {
    policies
        .iter()
        .enumerate()
        .map(|(i, p)| ShownStatement {
            command_code: p.command_code,
            text: Statement::decode(p, &format!("policy [1] statement {}", i + 1))
                .map(|s| s.to_string())
                .map_err(|e| e.to_string()),
        })
        .collect()
}

fn show_signed((i, entry): (usize, &tpmkey::keyfile::TpmAuthPolicy)) -> ShownSigned {
    let decoded = SignedPolicy::decode(entry, &format!("authPolicy [3] entry {}", i + 1))
        .map(|s| {
            let statements = s.statements.iter().map(|st| st.to_string()).collect();
            let signer = s
                .authorize
                .signer_name()
                .map(|n| hex(&n))
                .unwrap_or_default();
            (statements, signer, hex(&s.authorize.policy_ref))
        })
        .map_err(|e| e.to_string());
    ShownSigned {
        name: entry.name.clone(),
        decoded,
    }
}

fn type_word(t: KeyFileType) -> &'static str {
    match t {
        KeyFileType::Loadable => "loadable",
        KeyFileType::Importable => "importable",
        KeyFileType::Sealed => "sealed",
    }
}

fn parent_word(parent: u32) -> String {
    match parent {
        0x4000_0001 => "the storage primary key of the owner hierarchy, ECC P-256 SRK".into(),
        0x8100_0000..=0x81FF_FFFF => "a persistent key".into(),
        _ => "an unusual parent".into(),
    }
}

/// (algorithm, curve, bits) of the public area.
fn algorithm(public: &CertifiedKey, tpmt_type: u16) -> (String, Option<&'static str>, Option<u32>) {
    match &public.key {
        Some(k @ PublicKey::Ec { curve, .. }) => ("ecc".into(), Some(curve.name()), Some(k.bits())),
        Some(k @ PublicKey::Rsa { .. }) => ("rsa".into(), None, Some(k.bits())),
        None => (
            match tpmt_type {
                0x0001 => "rsa".into(),
                0x0023 => "ecc".into(),
                0x0008 => "keyedhash".into(),
                0x0025 => "symcipher".into(),
                t => format!("0x{t:04x}"),
            },
            None,
            None,
        ),
    }
}

fn attribute_fields(a: &KeyAttributes) -> [(&'static str, &'static str, bool); 9] {
    [
        ("fixed_tpm", "fixedTPM", a.fixed_tpm),
        ("fixed_parent", "fixedParent", a.fixed_parent),
        (
            "sensitive_data_origin",
            "sensitiveDataOrigin",
            a.sensitive_data_origin,
        ),
        ("user_with_auth", "userWithAuth", a.user_with_auth),
        ("admin_with_policy", "adminWithPolicy", a.admin_with_policy),
        ("no_da", "noDA", a.no_da),
        ("restricted", "restricted", a.restricted),
        ("sign", "sign", a.sign),
        ("decrypt", "decrypt", a.decrypt),
    ]
}

struct Report<'a> {
    path: String,
    file: &'a KeyFile,
    public: &'a CertifiedKey,
    policy: Option<Vec<ShownStatement>>,
    signed: Vec<ShownSigned>,
    load: &'a LoadCheck,
}

impl Report<'_> {
    fn tpmt_type(&self) -> u16 {
        let b = self.file.public.get(2..4).unwrap_or(&[0, 0]);
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Keys the TPM did not generate (sealed data never is: its data comes from outside).
    fn imported(&self) -> bool {
        !self.public.attributes.sensitive_data_origin && self.file.key_type != KeyFileType::Sealed
    }

    fn text(&self) -> String {
        let f = self.file;
        let p = self.public;
        let (alg, curve, bits) = algorithm(p, self.tpmt_type());
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
        line("file:", self.path.clone());
        line(
            "type:",
            format!("{} ({})", type_word(f.key_type), f.key_type.oid()),
        );
        let size = match (curve, bits) {
            (Some(c), _) => format!(" {c}"),
            (None, Some(b)) => format!(" {b} bits"),
            _ => String::new(),
        };
        line("algorithm:", format!("{}{size}", alg.to_uppercase()));
        line("name:", hex(&p.name));
        line(
            "parent:",
            format!("0x{:08x} ({})", f.parent, parent_word(f.parent)),
        );
        line(
            "emptyAuth:",
            if f.empty_auth {
                "TRUE (no password)".into()
            } else {
                "FALSE (a password is needed)".into()
            },
        );
        let set: Vec<&str> = attribute_fields(&p.attributes)
            .iter()
            .filter(|(_, _, on)| *on)
            .map(|(_, n, _)| *n)
            .collect();
        line("attributes:", set.join(" "));
        line(
            "origin:",
            match (f.key_type, self.imported()) {
                (KeyFileType::Sealed, _) => "sealed data (supplied from outside the TPM)".into(),
                (KeyFileType::Importable, _) => "to be imported (wrapped outside the TPM)".into(),
                (_, true) => "imported (sensitiveDataOrigin clear)".into(),
                (_, false) => "generated in the TPM".into(),
            },
        );
        line(
            "authPolicy:",
            if p.auth_policy.is_empty() {
                "none".into()
            } else {
                hex(&p.auth_policy)
            },
        );
        if let Some(statements) = &self.policy {
            line("policy:", format!("{} statement(s)", statements.len()));
            for (i, s) in statements.iter().enumerate() {
                let text = match &s.text {
                    Ok(t) => t.clone(),
                    Err(e) => format!("cannot be decoded: {e}"),
                };
                out.push_str(&format!("  {}. {text}\n", i + 1));
            }
        }
        if !self.signed.is_empty() {
            out.push_str(&format!(
                "{:<16}{} entr{}\n",
                "signed policies:",
                self.signed.len(),
                if self.signed.len() == 1 { "y" } else { "ies" }
            ));
            for (i, s) in self.signed.iter().enumerate() {
                let name = s.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
                match &s.decoded {
                    Ok((statements, signer, policy_ref)) => {
                        out.push_str(&format!("  \"{name}\" signed by {signer}"));
                        if !policy_ref.is_empty() {
                            out.push_str(&format!(" policyRef {policy_ref}"));
                        }
                        out.push('\n');
                        for st in statements {
                            out.push_str(&format!("    {st}\n"));
                        }
                    }
                    Err(e) => out.push_str(&format!("  \"{name}\" cannot be decoded: {e}\n")),
                }
            }
        }
        let load = match self.load {
            LoadCheck::NotTried(why) => format!("not tried: {why}"),
            LoadCheck::Loads => "yes, this TPM loads it".into(),
            LoadCheck::Refused { reason, .. } => format!("no: {reason}"),
        };
        out.push_str(&format!("{:<16}{load}\n", "loads:"));
        out
    }

    fn json(&self) -> Json {
        let f = self.file;
        let p = self.public;
        let (alg, curve, bits) = algorithm(p, self.tpmt_type());
        let statement = |s: &ShownStatement| {
            let (text, error) = match &s.text {
                Ok(t) => (Json::string(t), Json::Null),
                Err(e) => (Json::Null, Json::string(e)),
            };
            Json::Object(vec![
                ("command_code", Json::Number(u64::from(s.command_code))),
                (
                    "command",
                    Json::opt_string(tpmkey::policy::statement::command_name(s.command_code)),
                ),
                ("text", text),
                ("error", error),
            ])
        };
        let signed = |s: &ShownSigned| {
            let mut fields = vec![("name", Json::opt_string(s.name.clone()))];
            match &s.decoded {
                Ok((statements, signer, policy_ref)) => {
                    fields.push((
                        "statements",
                        Json::Array(statements.iter().map(Json::string).collect()),
                    ));
                    fields.push(("signer_name", Json::string(signer)));
                    fields.push(("policy_ref", Json::string(policy_ref)));
                    fields.push(("error", Json::Null));
                }
                Err(e) => fields.push(("error", Json::string(e))),
            }
            Json::Object(fields)
        };
        let load = match self.load {
            LoadCheck::NotTried(why) => vec![
                ("tried", Json::Bool(false)),
                ("loads", Json::Null),
                ("reason", Json::string(why)),
            ],
            LoadCheck::Loads => vec![
                ("tried", Json::Bool(true)),
                ("loads", Json::Bool(true)),
                ("reason", Json::Null),
            ],
            LoadCheck::Refused { reason, error } => vec![
                ("tried", Json::Bool(true)),
                ("loads", Json::Bool(false)),
                ("reason", Json::string(reason)),
                (
                    "tpm_unreachable",
                    Json::Bool(matches!(error, Error::Tcti { .. })),
                ),
            ],
        };
        Json::Object(vec![
            ("file", Json::string(&self.path)),
            ("type", Json::string(type_word(f.key_type))),
            ("oid", Json::string(f.key_type.oid())),
            ("algorithm", Json::string(alg)),
            ("curve", Json::opt_string(curve)),
            (
                "bits",
                bits.map_or(Json::Null, |b| Json::Number(u64::from(b))),
            ),
            ("name", Json::string(hex(&p.name))),
            ("name_alg", Json::string(p.name_alg.name().to_lowercase())),
            ("parent", Json::string(format!("0x{:08x}", f.parent))),
            ("empty_auth", Json::Bool(f.empty_auth)),
            (
                "attributes",
                Json::Object(
                    attribute_fields(&p.attributes)
                        .iter()
                        .map(|(k, _, on)| (*k, Json::Bool(*on)))
                        .collect(),
                ),
            ),
            ("imported", Json::Bool(self.imported())),
            ("auth_policy", Json::string(hex(&p.auth_policy))),
            (
                "policy",
                Json::Array(self.policy.iter().flatten().map(statement).collect()),
            ),
            (
                "signed_policies",
                Json::Array(self.signed.iter().map(signed).collect()),
            ),
            ("load", Json::Object(load)),
        ])
    }
}
