//! Fuzzes the response parsers behind the session check: an in-process TCTI plays the TPM's
//! side of tpmkey's salted HMAC session (it holds the private key of the salt point, so it
//! derives the same session key), and answers the fuzzed command with the fuzzer's bytes as
//! the parameter area, wrapped in a session area whose HMAC is valid and whose first
//! parameter is encrypted as the TPM would. The core therefore accepts the response as
//! authentic and hands the fuzzer's bytes to the command's parser. No core hook is needed:
//! the emulation uses only the session formulas of Part 1 (core/src/session_crypto.rs).
//!
//! Input: the first byte picks the command, the rest is the parameter area. Commands that
//! run without a session get the bytes as the whole response (as in `tpm_response`).
//!
//! Run from core/: `cargo +nightly fuzz run tpm_response_hmac`

#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use tpmkey::commands::Tpm;
use tpmkey::session::SaltKey;
use tpmkey::session_crypto::{kdfa, kdfe, SessionCrypto, CRYPTO};
use tpmkey::tcti::Tcti;
use tpmkey::wire::{Reader, Writer, TPM_ALG_ECDSA, TPM_ALG_OAEP, TPM_ALG_SHA256};

const HANDLE: u32 = 0x8000_0001;
const NAME: &[u8] = &[0, 0x0B, 1, 2, 3];
const SESSION_HANDLE: u32 = 0x0200_0000;
const NEW_HANDLE: u32 = 0x8000_0002;
const START_AUTH_SESSION: u32 = 0x176;
const ATTR_ENCRYPT: u8 = 0x40;
const NONCE_TPM: [u8; 32] = [0x33; 32];
const FAILURE: [u8; 10] = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];
/// The salt key's private scalar (any valid one: the emulated TPM's storage key).
const SALT_SCALAR: [u8; 32] = [0x11; 32];

/// Commands whose response carries a handle before the parameters.
fn makes_handle(code: u32) -> bool {
    matches!(code, 0x131 | 0x157 | 0x161 | 0x176 | 0x191)
}

/// The TPM side of one salted HMAC session.
struct SessionTpm {
    secret: p256::SecretKey,
    key: Option<Vec<u8>>,
    params: Vec<u8>,
    answered: bool,
}

fn header(tag: u16, code_or_rc: u32, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(tag)
        .u32(10 + body.len() as u32)
        .u32(code_or_rc)
        .bytes(body);
    w.into_vec()
}

impl SessionTpm {
    fn salt_key(&self) -> SaltKey {
        let point = self.secret.public_key().to_encoded_point(false);
        SaltKey {
            x: point.x().map(|x| x.to_vec()).unwrap_or_default(),
            y: point.y().map(|y| y.to_vec()).unwrap_or_default(),
        }
    }

    /// StartAuthSession: decrypt the salt with the private key and derive the session key.
    fn start(&mut self, cmd: &[u8]) -> Option<Vec<u8>> {
        let mut r = Reader::new(cmd.get(18..)?);
        let nonce_caller = r.tpm2b().ok()?.to_vec();
        let mut point = Reader::new(r.tpm2b().ok()?);
        let (ex, ey) = (point.tpm2b().ok()?, point.tpm2b().ok()?);
        if ex.len() != 32 || ey.len() != 32 {
            return None;
        }
        let encoded = p256::EncodedPoint::from_affine_coordinates(
            p256::FieldBytes::from_slice(ex),
            p256::FieldBytes::from_slice(ey),
            false,
        );
        let peer = Option::<p256::PublicKey>::from(p256::PublicKey::from_encoded_point(&encoded))?;
        let z = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        let salt = kdfe(
            &CRYPTO,
            z.raw_secret_bytes(),
            "SECRET",
            ex,
            &self.salt_key().x,
            256,
        );
        self.key = Some(kdfa(&CRYPTO, &salt, "ATH", &NONCE_TPM, &nonce_caller, 256).to_vec());
        let mut body = Writer::new();
        body.u32(SESSION_HANDLE).tpm2b(&NONCE_TPM);
        Some(header(0x8001, 0, &body.into_vec()))
    }

    /// The command's authorisation entries: (handle, nonceCaller, attributes).
    fn auth_entries(cmd: &[u8]) -> Option<Vec<(u32, Vec<u8>, u8)>> {
        for handles in 0..=3 {
            let Some(area) = cmd.get(10 + 4 * handles..) else {
                continue;
            };
            let mut r = Reader::new(area);
            let Ok(size) = r.u32() else { continue };
            let Ok(mut entries) = r.take(size as usize).map(Reader::new) else {
                continue;
            };
            let mut list = Vec::new();
            while !entries.is_empty() {
                let (Ok(h), Ok(nonce), Ok(attrs), Ok(_)) = (
                    entries.u32(),
                    entries.tpm2b(),
                    entries.u8(),
                    entries.tpm2b(),
                ) else {
                    break;
                };
                list.push((h, nonce.to_vec(), attrs));
            }
            if entries.is_empty() && list.iter().any(|(h, _, _)| *h == SESSION_HANDLE) {
                return Some(list);
            }
        }
        None
    }

    /// A successful response to `cmd` with the fuzzer's parameters, every session entry
    /// authentic.
    fn answer(&self, cmd: &[u8]) -> Option<Vec<u8>> {
        let key = self.key.as_ref()?;
        let code = u32::from_be_bytes(cmd.get(6..10)?.try_into().ok()?);
        let entries = Self::auth_entries(cmd)?;
        let mut params = self.params.clone();
        let attrs_of_session = entries
            .iter()
            .find(|(h, _, _)| *h == SESSION_HANDLE)
            .map_or(0, |e| e.2);
        if attrs_of_session & ATTR_ENCRYPT != 0 {
            let nonce_caller = &entries.iter().find(|e| e.0 == SESSION_HANDLE)?.1;
            let n = usize::from(u16::from_be_bytes(params.get(..2)?.try_into().ok()?));
            let data = params.get_mut(2..2 + n)?;
            let kiv = kdfa(&CRYPTO, key, "CFB", &NONCE_TPM, nonce_caller, 256);
            CRYPTO
                .aes128_cfb(&kiv[..16], &kiv[16..32], data, true)
                .ok()?;
        }
        let rp_hash = CRYPTO.sha256(&[&0u32.to_be_bytes(), &code.to_be_bytes(), &params]);
        let mut sessions = Writer::new();
        for (h, nonce_caller, attrs) in &entries {
            if *h == SESSION_HANDLE {
                let hmac =
                    CRYPTO.hmac_sha256(key, &[&rp_hash, &NONCE_TPM, nonce_caller, &[*attrs]]);
                sessions.tpm2b(&NONCE_TPM).u8(*attrs).tpm2b(&hmac);
            } else {
                sessions.tpm2b(&[]).u8(*attrs).tpm2b(&[]);
            }
        }
        let mut body = Writer::new();
        if makes_handle(code) {
            body.u32(NEW_HANDLE);
        }
        body.u32(params.len() as u32)
            .bytes(&params)
            .bytes(&sessions.into_vec());
        Some(header(0x8002, 0, &body.into_vec()))
    }

    fn respond(&mut self, cmd: &[u8]) -> Vec<u8> {
        let code = cmd
            .get(6..10)
            .and_then(|c| c.try_into().ok())
            .map_or(0, u32::from_be_bytes);
        if code == START_AUTH_SESSION && self.key.is_none() {
            return self.start(cmd).unwrap_or_else(|| FAILURE.to_vec());
        }
        if self.answered {
            return FAILURE.to_vec();
        }
        self.answered = true;
        // A command sent without the session gets the bytes as its whole response.
        self.answer(cmd).unwrap_or_else(|| self.params.clone())
    }
}

/// One emulated TPM and one session for the whole fuzzing process (starting a session costs
/// two P-256 operations): each input only sets the parameters the next answer carries. The
/// session is started again when the core gave it up.
struct Shared {
    tpm: Tpm,
    emulator: Arc<Mutex<SessionTpm>>,
    salt_key: SaltKey,
}

fn shared() -> &'static Mutex<Shared> {
    static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let Ok(secret) = p256::SecretKey::from_slice(&SALT_SCALAR) else {
            panic!("the salt scalar is not a P-256 scalar");
        };
        let emulator = Arc::new(Mutex::new(SessionTpm {
            secret,
            key: None,
            params: Vec::new(),
            answered: true,
        }));
        let salt_key = lock(&emulator).salt_key();
        let answering = emulator.clone();
        let tpm = Tpm::new(
            Tcti::scripted(move |cmd| lock(&answering).respond(cmd)),
            true,
        );
        Mutex::new(Shared {
            tpm,
            emulator,
            salt_key,
        })
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, params)) = data.split_first() else {
        return;
    };
    let mut shared = lock(shared());
    let Shared {
        tpm,
        emulator,
        salt_key,
    } = &mut *shared;
    if tpm.session.is_none() {
        lock(emulator).key = None;
        let Ok(session) = tpm.start_salted_session(HANDLE, salt_key) else {
            panic!("the emulated TPM's session does not start");
        };
        tpm.session = Some(session);
    }
    {
        let mut e = lock(emulator);
        e.params = params.to_vec();
        e.answered = false;
    }
    let _ = match pick % 16 {
        0 => tpm.create_primary(0x4000_0001, b"", &[0; 8]).map(|_| ()),
        1 => tpm.create(HANDLE, NAME, b"", b"", b"", &[0; 8]).map(|_| ()),
        2 => tpm.load(HANDLE, NAME, b"", &[0, 0], &[0, 0]).map(|_| ()),
        3 => tpm
            .sign(
                HANDLE,
                NAME,
                &b""[..],
                &[7; 32],
                TPM_ALG_ECDSA,
                TPM_ALG_SHA256,
            )
            .map(|_| ()),
        4 => tpm
            .rsa_decrypt(
                HANDLE,
                NAME,
                &b""[..],
                &[3; 256],
                TPM_ALG_OAEP,
                TPM_ALG_SHA256,
                b"",
            )
            .map(|_| ()),
        5 => tpm
            .ecdh_zgen(HANDLE, NAME, &b""[..], &[1; 32], &[2; 32])
            .map(|_| ()),
        6 => tpm.unseal(HANDLE, NAME, &b""[..]).map(|_| ()),
        7 => tpm
            .object_change_auth(HANDLE, NAME, b"", HANDLE, NAME, b"new")
            .map(|_| ()),
        8 => tpm
            .certify(HANDLE, NAME, b"", HANDLE, NAME, b"", b"nonce")
            .map(|_| ()),
        9 => tpm
            .quote(HANDLE, b"", b"nonce", &[0, 0, 0, 1, 0, 0x0B, 3, 0x81, 0, 0])
            .map(|_| ()),
        10 => tpm.nv_read(0x0100_0000, NAME, b"", 0, 32).map(|_| ()),
        11 => tpm
            .import(HANDLE, NAME, b"", b"", &[0, 0], &[0, 0], &[])
            .map(|_| ()),
        12 => tpm
            .activate_credential(HANDLE, NAME, b"", HANDLE, NAME, &[0, 0], &[0, 0])
            .map(|_| ()),
        13 => tpm
            .policy_secret(0x4000_000B, NAME, b"", 0x0300_0000, b"")
            .map(|_| ()),
        14 => tpm.get_random(32).map(|_| ()),
        _ => tpm
            .evict_control(b"", HANDLE, NAME, 0x8100_0001)
            .map(|_| ()),
    };
});
