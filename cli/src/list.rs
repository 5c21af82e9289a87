//! `tpmkey list`: the persistent objects in the TPM (TPM2_GetCapability of the handles
//! 0x81000000 on) and what each is from its public area (TPM2_ReadPublic), and with `--nv`
//! the NV indices (TPM2_NV_ReadPublic). Reads only; nothing needs authorisation.

use clap::Args as ClapArgs;

use tpmkey::attest::certify::CertifiedKey;
use tpmkey::commands::Tpm;
use tpmkey::connection::{with_link, Need};
use tpmkey::hex::hex;
use tpmkey::public_key::PublicKey;
use tpmkey::wire::{Reader, TPM_CAP_HANDLES};
use tpmkey::Result;

use crate::json::Json;

#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:\n  \
    tpmkey list\n  \
    tpmkey list --nv --json")]
pub struct Args {
    /// Also list NV indices (0x01xxxxxx)
    #[arg(long)]
    nv: bool,
    /// Print JSON (fields listed in tpmkey(1)) instead of a table
    #[arg(long)]
    json: bool,
}

const PERSISTENT_FIRST: u32 = 0x8100_0000;
const NV_FIRST: u32 = 0x0100_0000;
/// TPMA_NV bits read here (TPM 2.0 Part 2, 13.4).
const NV_TYPE_SHIFT: u32 = 4;
const NV_WRITTEN: u32 = 1 << 29;
/// The TCG EK Credential Profile's NV range (EK certificates, templates, nonces).
const EK_CREDENTIAL_RANGE: std::ops::RangeInclusive<u32> = 0x01C0_0000..=0x01C0_7FFF;

struct Persistent {
    handle: u32,
    key: std::result::Result<CertifiedKey, String>,
}

struct NvIndex {
    index: u32,
    attributes: u32,
    size: u16,
    name: Vec<u8>,
}

pub fn run(args: Args) -> Result<()> {
    let (persistent, nv) = with_link(|link| {
        link.run(Need::Nothing, |tpm, _| {
            let mut persistent = Vec::new();
            for handle in handles(tpm, PERSISTENT_FIRST, 0x81)? {
                let (public, _name) = tpm.read_public(handle)?;
                let key = CertifiedKey::parse(&public).map_err(|e| e.to_string());
                persistent.push(Persistent { handle, key });
            }
            let mut nv = Vec::new();
            if args.nv {
                for index in handles(tpm, NV_FIRST, 0x01)? {
                    let (public, name) = tpm.nv_read_public(index)?;
                    nv.push(nv_index(index, &public, name)?);
                }
            }
            Ok((persistent, nv))
        })
    })?;
    if args.json {
        println!("{}", json(&persistent, &nv, args.nv));
    } else {
        print!("{}", table(&persistent, &nv, args.nv));
    }
    Ok(())
}

/// Every handle from `first` whose top byte is `kind` (GetCapability pages until moreData
/// is clear).
fn handles(tpm: &mut Tpm, first: u32, kind: u8) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut from = first;
    loop {
        let (more, data) = tpm.get_capability(TPM_CAP_HANDLES, from, 64)?;
        let mut r = Reader::new(&data);
        let n = r.u32()?;
        let mut last = None;
        for _ in 0..n {
            let h = r.u32()?;
            if h.to_be_bytes()[0] != kind {
                return Ok(out);
            }
            out.push(h);
            last = Some(h);
        }
        match last.and_then(|h| h.checked_add(1)) {
            Some(next) if more => from = next,
            _ => return Ok(out),
        }
    }
}

fn nv_index(index: u32, public: &[u8], name: Vec<u8>) -> Result<NvIndex> {
    let mut r = Reader::new(public);
    let _index = r.u32()?;
    let _name_alg = r.u16()?;
    let attributes = r.u32()?;
    let _policy = r.tpm2b()?;
    let size = r.u16()?;
    Ok(NvIndex {
        index,
        attributes,
        size,
        name,
    })
}

/// (algorithm and size, role) of a persistent object.
fn describe(key: &CertifiedKey) -> (String, &'static str) {
    let a = &key.attributes;
    let kind = match &key.key {
        Some(PublicKey::Ec { curve, .. }) => format!("ECC {}", curve.name()),
        Some(k @ PublicKey::Rsa { .. }) => format!("RSA {}", k.bits()),
        None => "other".into(),
    };
    let role = match (a.restricted, a.sign, a.decrypt) {
        (true, false, true) if a.admin_with_policy && !a.user_with_auth => {
            "EK-like (restricted decryption, policy only)"
        }
        (true, false, true) => "storage key (restricted decryption)",
        (true, true, false) => "AK-like (restricted signing)",
        (false, true, true) => "application key (sign, decrypt)",
        (false, true, false) => "application key (sign)",
        (false, false, true) => "application key (decrypt)",
        (false, false, false) if key.key.is_none() => "sealed data or keyed hash",
        _ => "other",
    };
    (kind, role)
}

fn nv_type(attributes: u32) -> &'static str {
    match (attributes >> NV_TYPE_SHIFT) & 0xF {
        0 => "ordinary",
        1 => "counter",
        2 => "bits",
        4 => "extend",
        8 => "pin fail",
        9 => "pin pass",
        _ => "unknown",
    }
}

fn nv_role(index: u32) -> &'static str {
    match index {
        0x01C0_0002 => "RSA 2048 EK certificate",
        0x01C0_000A => "ECC P-256 EK certificate",
        i if EK_CREDENTIAL_RANGE.contains(&i) => "EK credential range (TCG)",
        _ => "",
    }
}

fn table(persistent: &[Persistent], nv: &[NvIndex], with_nv: bool) -> String {
    let mut out = format!("{:<12}{:<24}{:<46}{}\n", "HANDLE", "KEY", "ROLE", "NAME");
    if persistent.is_empty() {
        out.push_str("(no persistent objects)\n");
    }
    for p in persistent {
        let (kind, role, name) = match &p.key {
            Ok(k) => {
                let (kind, role) = describe(k);
                (kind, role.to_string(), hex(&k.name))
            }
            Err(e) => ("?".into(), format!("unreadable: {e}"), String::new()),
        };
        out.push_str(&format!("0x{:08x}  {kind:<24}{role:<46}{name}\n", p.handle));
    }
    if with_nv {
        out.push_str(&format!(
            "\n{:<12}{:<10}{:<8}{:<9}{:<28}{}\n",
            "NV INDEX", "TYPE", "SIZE", "WRITTEN", "ROLE", "NAME"
        ));
        if nv.is_empty() {
            out.push_str("(no NV indices)\n");
        }
        for i in nv {
            out.push_str(&format!(
                "0x{:08x}  {:<10}{:<8}{:<9}{:<28}{}\n",
                i.index,
                nv_type(i.attributes),
                i.size,
                if i.attributes & NV_WRITTEN != 0 {
                    "yes"
                } else {
                    "no"
                },
                nv_role(i.index),
                hex(&i.name)
            ));
        }
    }
    out
}

fn json(persistent: &[Persistent], nv: &[NvIndex], with_nv: bool) -> Json {
    let objects = persistent
        .iter()
        .map(|p| {
            let mut f = vec![("handle", Json::string(format!("0x{:08x}", p.handle)))];
            match &p.key {
                Ok(k) => {
                    let (kind, role) = describe(k);
                    let a = &k.attributes;
                    let (alg, curve, bits) = match &k.key {
                        Some(key @ PublicKey::Ec { curve, .. }) => (
                            "ecc",
                            Json::string(curve.name()),
                            Json::Number(key.bits().into()),
                        ),
                        Some(key @ PublicKey::Rsa { .. }) => {
                            ("rsa", Json::Null, Json::Number(key.bits().into()))
                        }
                        None => ("other", Json::Null, Json::Null),
                    };
                    f.extend([
                        ("algorithm", Json::string(alg)),
                        ("curve", curve),
                        ("bits", bits),
                        ("description", Json::string(kind)),
                        ("role", Json::string(role)),
                        ("restricted", Json::Bool(a.restricted)),
                        ("sign", Json::Bool(a.sign)),
                        ("decrypt", Json::Bool(a.decrypt)),
                        ("name", Json::string(hex(&k.name))),
                        ("error", Json::Null),
                    ]);
                }
                Err(e) => f.push(("error", Json::string(e))),
            }
            Json::Object(f)
        })
        .collect();
    let mut fields = vec![("persistent", Json::Array(objects))];
    if with_nv {
        let indices = nv
            .iter()
            .map(|i| {
                Json::Object(vec![
                    ("index", Json::string(format!("0x{:08x}", i.index))),
                    ("type", Json::string(nv_type(i.attributes))),
                    ("size", Json::Number(i.size.into())),
                    ("written", Json::Bool(i.attributes & NV_WRITTEN != 0)),
                    (
                        "attributes",
                        Json::string(format!("0x{:08x}", i.attributes)),
                    ),
                    ("role", Json::string(nv_role(i.index))),
                    ("name", Json::string(hex(&i.name))),
                ])
            })
            .collect();
        fields.push(("nv", Json::Array(indices)));
    }
    Json::Object(fields)
}
