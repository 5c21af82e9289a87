//! ENCODERs: private keys as TSS2 PRIVATE KEY (PEM, DER), public keys as
//! SubjectPublicKeyInfo (PEM, DER), and text for `openssl pkey -text`.

use std::ffi::{c_int, c_void};
use std::fmt::Write as _;

use tpmkey::keys::KeyLocation;
use tpmkey::public_key::{ec_point, PublicKey};
use tpmkey::{Error, Result};

use crate::bio::CoreBio;
use crate::error::guard_int;
use crate::ffi::*;
use crate::key::{self, Key, Material};
use crate::{algorithm, dispatch_table};

const TSS2_PEM: u8 = 0;
const TSS2_DER: u8 = 1;
const SPKI_PEM: u8 = 2;
const SPKI_DER: u8 = 3;
const TEXT: u8 = 4;

unsafe extern "C" fn newctx(provctx: *mut c_void) -> *mut c_void {
    // Stateless: the context is the provider context.
    provctx
}

unsafe extern "C" fn freectx(_ctx: *mut c_void) {}

unsafe extern "C" fn does_selection<const F: u8>(_provctx: *mut c_void, selection: c_int) -> c_int {
    let wanted = match F {
        TSS2_PEM | TSS2_DER => OSSL_KEYMGMT_SELECT_PRIVATE_KEY,
        SPKI_PEM | SPKI_DER => OSSL_KEYMGMT_SELECT_PUBLIC_KEY,
        _ => return 1,
    };
    c_int::from(selection & wanted != 0)
}

fn hex_lines(out: &mut String, bytes: &[u8]) {
    for line in bytes.chunks(15) {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let _ = writeln!(out, "    {}", hex.join(":"));
    }
}

/// What `openssl pkey -text -noout` shows: type, size, where the key lives, attributes.
pub(crate) fn text(k: &Key) -> Result<String> {
    let mut out = String::new();
    let public = k.public()?;
    let kind = match public {
        PublicKey::Ec { curve, .. } => format!("EC {}", curve.name()),
        PublicKey::Rsa { .. } => k.key_type.name().to_string(),
    };
    match &k.material {
        Material::Tpm(t) => {
            let _ = writeln!(out, "TPM {kind} key, {} bit", k.bits()?);
            match t.location() {
                KeyLocation::Blob { parent, .. } => {
                    let what = if *parent == 0x4000_0001 {
                        " (owner hierarchy storage primary)"
                    } else {
                        ""
                    };
                    let _ = writeln!(out, "parent: 0x{parent:08x}{what}");
                }
                KeyLocation::Persistent(h) => {
                    let _ = writeln!(out, "persistent handle: 0x{h:08x}");
                }
            }
            let p = t.public();
            let mut attrs = Vec::new();
            for (on, name) in [
                (p.can_sign, "sign"),
                (p.can_decrypt, "decrypt"),
                (p.restricted, "restricted"),
                (p.no_da, "noDA"),
                (p.user_with_auth, "userWithAuth"),
            ] {
                if on {
                    attrs.push(name);
                }
            }
            let _ = writeln!(out, "attributes: {}", attrs.join(" "));
            let _ = writeln!(
                out,
                "password: {}",
                if k.needs_password() {
                    "required"
                } else {
                    "none"
                }
            );
        }
        _ => {
            let _ = writeln!(out, "public {kind} key, {} bit", k.bits()?);
        }
    }
    match public {
        PublicKey::Ec { curve, x, y } => {
            let _ = writeln!(out, "pub:");
            hex_lines(&mut out, &ec_point(x, y));
            let _ = writeln!(out, "ASN1 OID: {}", key::group_name(*curve));
            let _ = writeln!(out, "NIST CURVE: {}", curve.name());
        }
        PublicKey::Rsa { modulus, exponent } => {
            let _ = writeln!(out, "Modulus:");
            hex_lines(&mut out, modulus);
            let _ = writeln!(out, "Exponent: {exponent} (0x{exponent:x})");
        }
    }
    Ok(out)
}

fn encode(format: u8, k: &Key) -> Result<Vec<u8>> {
    let key_file = || {
        let t = k.tpm_unauthorised()?;
        t.key_file().ok_or_else(|| {
            Error::Unsupported(
                "a key file for a persistent key (refer to it as handle:0x81xxxxxx)".into(),
            )
        })
    };
    Ok(match format {
        TSS2_PEM => key_file()?.to_pem().into_bytes(),
        TSS2_DER => key_file()?.to_der(),
        SPKI_PEM => tpmkey::keyfile::pem_encode("PUBLIC KEY", &k.spki()?).into_bytes(),
        SPKI_DER => k.spki()?,
        _ => text(k)?.into_bytes(),
    })
}

unsafe extern "C" fn encode_fn<const F: u8>(
    _ctx: *mut c_void,
    out: *mut OSSL_CORE_BIO,
    obj_raw: *const c_void,
    _obj_abstract: *const OSSL_PARAM,
    _selection: c_int,
    _cb: Option<OSSL_PASSPHRASE_CALLBACK>,
    _cbarg: *mut c_void,
) -> c_int {
    guard_int("encoder", || {
        // SAFETY: obj_raw is keydata of our keymgmt (same provider); out is the core's BIO.
        let (k, out) = unsafe { (key::keydata(obj_raw)?, CoreBio::from_ptr(out)) };
        out.write_all(&encode(F, k)?)
    })
}

macro_rules! encoder_table {
    ($f:expr) => {
        dispatch_table![
            OSSL_FUNC_ENCODER_NEWCTX => newctx,
            OSSL_FUNC_ENCODER_FREECTX => freectx,
            OSSL_FUNC_ENCODER_DOES_SELECTION => does_selection::<{ $f }>,
            OSSL_FUNC_ENCODER_ENCODE => encode_fn::<{ $f }>,
        ]
    };
}

static TSS2_PEM_FUNCTIONS: &[OSSL_DISPATCH] = encoder_table!(TSS2_PEM);
static TSS2_DER_FUNCTIONS: &[OSSL_DISPATCH] = encoder_table!(TSS2_DER);
static SPKI_PEM_FUNCTIONS: &[OSSL_DISPATCH] = encoder_table!(SPKI_PEM);
static SPKI_DER_FUNCTIONS: &[OSSL_DISPATCH] = encoder_table!(SPKI_DER);
static TEXT_FUNCTIONS: &[OSSL_DISPATCH] = encoder_table!(TEXT);

macro_rules! encoders_for {
    ($name:literal) => {
        [
            algorithm!(
                $name,
                c"provider=tpmkey,output=pem,structure=PrivateKeyInfo",
                TSS2_PEM_FUNCTIONS
            ),
            algorithm!(
                $name,
                c"provider=tpmkey,output=der,structure=PrivateKeyInfo",
                TSS2_DER_FUNCTIONS
            ),
            algorithm!(
                $name,
                c"provider=tpmkey,output=pem,structure=SubjectPublicKeyInfo",
                SPKI_PEM_FUNCTIONS
            ),
            algorithm!(
                $name,
                c"provider=tpmkey,output=der,structure=SubjectPublicKeyInfo",
                SPKI_DER_FUNCTIONS
            ),
            algorithm!($name, c"provider=tpmkey,output=text", TEXT_FUNCTIONS),
        ]
    };
}

const EC_ENCODERS: [OSSL_ALGORITHM; 5] = encoders_for!(c"EC");
const RSA_ENCODERS: [OSSL_ALGORITHM; 5] = encoders_for!(c"RSA");
const RSA_PSS_ENCODERS: [OSSL_ALGORITHM; 5] = encoders_for!(c"RSA-PSS");

pub(crate) static ALGORITHMS: [OSSL_ALGORITHM; 16] = [
    EC_ENCODERS[0],
    EC_ENCODERS[1],
    EC_ENCODERS[2],
    EC_ENCODERS[3],
    EC_ENCODERS[4],
    RSA_ENCODERS[0],
    RSA_ENCODERS[1],
    RSA_ENCODERS[2],
    RSA_ENCODERS[3],
    RSA_ENCODERS[4],
    RSA_PSS_ENCODERS[0],
    RSA_PSS_ENCODERS[1],
    RSA_PSS_ENCODERS[2],
    RSA_PSS_ENCODERS[3],
    RSA_PSS_ENCODERS[4],
    OSSL_ALGORITHM::END,
];
