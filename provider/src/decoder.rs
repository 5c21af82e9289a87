//! DECODERs: PEM `TSS2 PRIVATE KEY` to DER (structure "TSS2"), and TSS2 DER to a key
//! object reference that KEYMGMT LOAD takes. This is how `-key file.pem`,
//! `PEM_read_bio_PrivateKey` and nginx's `ssl_certificate_key` reach TPM keys. A key with a
//! password asks the application's password callback.

use std::ffi::{c_int, c_void};

use tpmkey::keyfile::{KeyFileType, PEM_LABEL};
use tpmkey::{KeyFile, Result, TpmKey};
use zeroize::Zeroizing;

use crate::bio::CoreBio;
use crate::error::guard_int;
use crate::ffi::*;
use crate::key::{Key, KeyType, Material};
use crate::keymgmt::reference_bytes;
use crate::params::ParamList;
use crate::{algorithm, dispatch_table};

/// The structure name our PEM decoder hands on and our DER decoders take.
pub(crate) const STRUCTURE: &str = "TSS2";
/// SEQUENCE, then OID 2.23.133.10.1.x: the start of every TSS2 key file.
const TSS2_OID_PREFIX: &[u8] = &[0x06, 0x06, 0x67, 0x81, 0x05, 0x0A, 0x01];

unsafe extern "C" fn newctx(provctx: *mut c_void) -> *mut c_void {
    // Stateless: the context is the provider context.
    provctx
}

unsafe extern "C" fn freectx(_ctx: *mut c_void) {}

unsafe extern "C" fn does_selection(_provctx: *mut c_void, selection: c_int) -> c_int {
    let key = OSSL_KEYMGMT_SELECT_PRIVATE_KEY | OSSL_KEYMGMT_SELECT_PUBLIC_KEY;
    c_int::from(selection == 0 || selection & key != 0)
}

fn pem_to_der(input: &[u8]) -> Result<Option<Vec<u8>>> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    if !input.windows(begin.len()).any(|w| w == begin.as_bytes()) {
        return Ok(None); // not ours: another decoder's turn
    }
    Ok(Some(KeyFile::from_pem(input)?.to_der()))
}

unsafe extern "C" fn decode_pem(
    _ctx: *mut c_void,
    cin: *mut OSSL_CORE_BIO,
    _selection: c_int,
    data_cb: Option<OSSL_CALLBACK>,
    data_cbarg: *mut c_void,
    _pw_cb: Option<OSSL_PASSPHRASE_CALLBACK>,
    _pw_cbarg: *mut c_void,
) -> c_int {
    guard_int("decoder TSS2 PEM to DER", || {
        // SAFETY: the core's BIO, valid during the call.
        let input = unsafe { CoreBio::from_ptr(cin) }.read_all()?;
        let Some(der) = pem_to_der(&input)? else {
            return Ok(());
        };
        let mut params = ParamList::new();
        params
            .octets(OSSL_OBJECT_PARAM_DATA, &der)
            .utf8(OSSL_OBJECT_PARAM_DATA_STRUCTURE, STRUCTURE);
        // SAFETY: the core's callback with its argument.
        unsafe { params.hand_to(data_cb, data_cbarg, "the TPM key file") }
            .map_err(|refused| refusal_cause(&der).unwrap_or(refused))
    })
}

/// Why tpmkey cannot use the key file `der`, if it cannot. OpenSSL drops the errors of
/// the DER decoders it tried when none of them took the key, and would print only that
/// the key file was not accepted; the cause goes on the error queue from here instead.
fn refusal_cause(der: &[u8]) -> Option<tpmkey::Error> {
    match KeyFile::from_der(der) {
        Err(e) => Some(e),
        // Asking again would import it again (a TPM2_Import); the log has its cause.
        Ok(file) if file.key_type == KeyFileType::Importable => None,
        Ok(file) => TpmKey::from_key_file(&file, None).err(),
    }
}

/// Asks the application for the key's password (`-passin`, nginx `ssl_password_file`);
/// `None` when it has none to give (no callback, no tty, EOF, a daemon without one).
///
/// # Safety
/// `pw_cb` and `pw_cbarg` are the pair the core handed to the operation.
pub(crate) unsafe fn ask_password(
    pw_cb: Option<OSSL_PASSPHRASE_CALLBACK>,
    pw_cbarg: *mut c_void,
) -> Option<Zeroizing<Vec<u8>>> {
    let cb = pw_cb?;
    let mut buf = Zeroizing::new(vec![0u8; 256]);
    let mut len = 0usize;
    let mut info = ParamList::new();
    info.utf8(OSSL_PASSPHRASE_PARAM_INFO, "TPM key");
    // SAFETY: buf is writable for its length, len a valid out-pointer, cb the core's.
    let ok = unsafe {
        cb(
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut len,
            info.as_ptr(),
            pw_cbarg,
        )
    };
    if ok == 0 {
        return None;
    }
    buf.truncate(len.min(256));
    Some(buf)
}

/// `tpm` as a key object, with the password `password` gives when the key needs one (or
/// `ask` says to ask anyway). Without one the key still serves its public half; private
/// operations then say why they fail, and the TPM never sees a guess.
pub(crate) fn with_password(
    tpm: TpmKey,
    key_type: KeyType,
    ask: bool,
    password: impl FnOnce() -> Option<Zeroizing<Vec<u8>>>,
) -> Key {
    let mut key = Key::new(key_type, Material::Tpm(tpm));
    if ask || key.needs_password() {
        match password() {
            Some(password) => {
                if let Material::Tpm(t) = &mut key.material {
                    t.set_password(&password);
                }
            }
            None => key.password_missing = true,
        }
    }
    key
}

/// A key object from TSS2 DER; `None` when the bytes are no TSS2 key of this type.
pub(crate) fn key_from_der(
    der: &[u8],
    key_type: KeyType,
    password: impl FnOnce() -> Option<Zeroizing<Vec<u8>>>,
) -> Result<Option<Key>> {
    if !der.get(..12).is_some_and(|head| {
        head.windows(TSS2_OID_PREFIX.len())
            .any(|w| w == TSS2_OID_PREFIX)
    }) {
        return Ok(None);
    }
    let file = KeyFile::from_der(der)?;
    let tpm = TpmKey::from_key_file(&file, None)?;
    if !key_type.fits(&tpm.public().key) {
        return Ok(None);
    }
    let key_type = key_type.served_as(&tpm);
    Ok(Some(with_password(tpm, key_type, false, password)))
}

unsafe extern "C" fn decode_der<const T: u8>(
    _ctx: *mut c_void,
    cin: *mut OSSL_CORE_BIO,
    _selection: c_int,
    data_cb: Option<OSSL_CALLBACK>,
    data_cbarg: *mut c_void,
    pw_cb: Option<OSSL_PASSPHRASE_CALLBACK>,
    pw_cbarg: *mut c_void,
) -> c_int {
    guard_int("decoder TSS2 DER to key", || {
        let key_type = if T == 0 { KeyType::Ec } else { KeyType::Rsa };
        // SAFETY: the core's BIO, valid during the call.
        let der = unsafe { CoreBio::from_ptr(cin) }.read_all()?;
        // SAFETY: the core's password callback with its argument.
        let password = || unsafe { ask_password(pw_cb, pw_cbarg) };
        let Some(key) = key_from_der(&der, key_type, password)? else {
            return Ok(());
        };
        // SAFETY: the core's callback with its argument.
        unsafe { object_params(&key).hand_to(data_cb, data_cbarg, "the decoded TPM key") }
    })
}

/// The parameters that hand `key` (kept alive by the caller) to KEYMGMT LOAD.
pub(crate) fn object_params(key: &Key) -> ParamList {
    let mut params = ParamList::new();
    params
        .int(OSSL_OBJECT_PARAM_TYPE, OSSL_OBJECT_PKEY)
        .utf8(OSSL_OBJECT_PARAM_DATA_TYPE, key.key_type.name())
        .utf8(OSSL_OBJECT_PARAM_DATA_STRUCTURE, STRUCTURE)
        .octets(OSSL_OBJECT_PARAM_REFERENCE, &reference_bytes(key));
    params
}

static PEM_FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_DECODER_NEWCTX => newctx,
    OSSL_FUNC_DECODER_FREECTX => freectx,
    OSSL_FUNC_DECODER_DOES_SELECTION => does_selection,
    OSSL_FUNC_DECODER_DECODE => decode_pem,
];
static EC_FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_DECODER_NEWCTX => newctx,
    OSSL_FUNC_DECODER_FREECTX => freectx,
    OSSL_FUNC_DECODER_DOES_SELECTION => does_selection,
    OSSL_FUNC_DECODER_DECODE => decode_der::<0>,
];
static RSA_FUNCTIONS: &[OSSL_DISPATCH] = dispatch_table![
    OSSL_FUNC_DECODER_NEWCTX => newctx,
    OSSL_FUNC_DECODER_FREECTX => freectx,
    OSSL_FUNC_DECODER_DOES_SELECTION => does_selection,
    OSSL_FUNC_DECODER_DECODE => decode_der::<1>,
];

pub(crate) static ALGORITHMS: [OSSL_ALGORITHM; 4] = [
    algorithm!(c"DER", c"provider=tpmkey,input=pem", PEM_FUNCTIONS),
    algorithm!(
        c"EC",
        c"provider=tpmkey,input=der,structure=TSS2",
        EC_FUNCTIONS
    ),
    algorithm!(
        c"RSA",
        c"provider=tpmkey,input=der,structure=TSS2",
        RSA_FUNCTIONS
    ),
    OSSL_ALGORITHM::END,
];
