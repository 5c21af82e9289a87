//! What the PKCS#11 module's black-box tests need: a real swtpm per test, a private store,
//! the module cargo built (`libtpmkey_pkcs11.so`, see [`crate::cdylib`]) loaded through the
//! `cryptoki` crate, tokens with key pairs, and child processes. The module reads its
//! configuration from the environment, which is process-wide: tests of one binary run one
//! at a time ([`crate::serial`]).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::MutexGuard;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub use crate::pkcs11_module::module_path;
pub use crate::{Swtpm, TempDir, TpmEndpoint};

pub const SO_PIN: &str = "so-secret";
pub const USER_PIN: &str = "123456";

/// A swtpm, a store, and the environment pointing the module at them.
#[derive(Debug)]
pub struct TestEnv {
    pub swtpm: Swtpm,
    pub store: TempDir,
    _serial: MutexGuard<'static, ()>,
}

/// The module stays loaded for the life of the process (it pins itself so that its exit
/// flush never runs inside dlclose), so a test that ends without C_Finalize would leave it
/// initialised for the next one: finalize it here, as every PKCS#11 application must.
impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Ok(p) = Pkcs11::new(module_path()) {
            let _ = p.finalize();
        }
    }
}

impl TestEnv {
    pub fn new(objects: &str) -> TestEnv {
        let serial = crate::serial();
        let swtpm = Swtpm::start();
        let store = TempDir::new("store");
        std::env::set_var("TPMKEY_TCTI", swtpm.tcti());
        std::env::set_var("TPMKEY_STORE", &store.0);
        std::env::set_var("TPMKEY_CONF", "/dev/null");
        std::env::set_var("TPMKEY_OBJECTS", objects);
        TestEnv {
            swtpm,
            store,
            _serial: serial,
        }
    }

    /// Environment for a child process using the module (tools, forked signers).
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            "TPMKEY_TCTI",
            "TPMKEY_STORE",
            "TPMKEY_CONF",
            "TPMKEY_OBJECTS",
        ]
        .iter()
        .map(|k| (k.to_string(), std::env::var(k).unwrap()))
        .collect()
    }
}

pub fn load() -> Pkcs11 {
    let p = Pkcs11::new(module_path()).unwrap();
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    p
}

/// Initialises a token on the empty slot with SO and user PINs; returns its slot.
pub fn init_token(p: &Pkcs11, label: &str) -> Slot {
    let empty = empty_slot(p);
    p.init_token(empty, &AuthPin::new(SO_PIN.into()), label)
        .unwrap();
    let session = p.open_rw_session(empty).unwrap();
    session
        .login(UserType::So, Some(&AuthPin::new(SO_PIN.into())))
        .unwrap();
    session.init_pin(&AuthPin::new(USER_PIN.into())).unwrap();
    session.logout().unwrap();
    empty
}

pub fn user_session(p: &Pkcs11, slot: Slot) -> Session {
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    s
}

/// The slot with the uninitialised token.
pub fn empty_slot(p: &Pkcs11) -> Slot {
    p.get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| !p.get_token_info(*s).unwrap().token_initialized())
        .unwrap()
}

/// Slots with an initialised token.
pub fn token_slots(p: &Pkcs11) -> Vec<Slot> {
    p.get_all_slots()
        .unwrap()
        .into_iter()
        .filter(|s| p.get_token_info(*s).unwrap().token_initialized())
        .collect()
}

/// CKA_ID of the EC P-256 key pair `token_with_keys` creates.
pub const EC_ID: &[u8] = &[0x01];
/// CKA_ID of its RSA-2048 key pair.
pub const RSA_ID: &[u8] = &[0x02];

/// A token made in-process for the tools to use: label, and the public keys (DER
/// SubjectPublicKeyInfo, as CKA_PUBLIC_KEY_INFO gives them) of its two key pairs.
#[derive(Debug)]
pub struct TokenKeys {
    pub label: String,
    pub ec_spki: Vec<u8>,
    pub rsa_spki: Vec<u8>,
}

/// Initialises a token `label` with the PINs of this module and two token key pairs:
/// EC P-256 (CKA_ID 01, label "ec") and RSA-2048 (CKA_ID 02, label "rsa"). The module is
/// finalised afterwards, so child processes find the TPM's slots free.
pub fn token_with_keys(label: &str) -> TokenKeys {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, AttributeType};
    let p = load();
    let slot = init_token(&p, label);
    let s = user_session(&p, slot);
    let spki = |h| match s
        .get_attributes(h, &[AttributeType::PublicKeyInfo])
        .unwrap()
        .pop()
    {
        Some(Attribute::PublicKeyInfo(v)) => v,
        other => panic!("CKA_PUBLIC_KEY_INFO: {other:?}"),
    };
    let (ec, _) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::EcParams(vec![
                    0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07,
                ]),
                Attribute::Id(EC_ID.to_vec()),
                Attribute::Label("ec".into()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Id(EC_ID.to_vec()),
                Attribute::Label("ec".into()),
            ],
        )
        .unwrap();
    let (rsa, _) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::Id(RSA_ID.to_vec()),
                Attribute::Label("rsa".into()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Id(RSA_ID.to_vec()),
                Attribute::Label("rsa".into()),
            ],
        )
        .unwrap();
    let keys = TokenKeys {
        label: label.to_string(),
        ec_spki: spki(ec),
        rsa_spki: spki(rsa),
    };
    drop(s);
    p.finalize().unwrap();
    keys
}

/// `program` with the environment that points the module at this test's TPM and store.
pub fn command(env: &TestEnv, program: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.envs(env.vars());
    cmd
}

/// stdout and stderr of a finished command, for assertions and failure messages.
pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `spki` (DER SubjectPublicKeyInfo) to `dir/name.der` and, converted by openssl,
/// `dir/name.pem`; returns the PEM path.
pub fn public_key_files(dir: &std::path::Path, name: &str, spki: &[u8]) -> PathBuf {
    let der = dir.join(format!("{name}.der"));
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&der, spki).unwrap();
    crate::run(
        std::process::Command::new("openssl")
            .args(["pkey", "-pubin", "-inform", "DER", "-in"])
            .arg(&der)
            .arg("-out")
            .arg(&pem),
    );
    pem
}

/// A tpmkey.conf naming this test's TPM, store and object policy: for processes whose
/// environment does not reach the module (daemons strip it).
pub fn write_conf(env: &TestEnv, dir: &std::path::Path) -> PathBuf {
    let path = dir.join("tpmkey.conf");
    std::fs::write(
        &path,
        format!(
            "tcti = {}\nstore = {}\nobjects = {}\n",
            env.swtpm.tcti(),
            env.store.0.display(),
            std::env::var("TPMKEY_OBJECTS").unwrap()
        ),
    )
    .unwrap();
    path
}

/// The token's private key with CKA_ID `id` (the user is logged in on `s`).
pub fn private_key(s: &Session, id: &[u8]) -> cryptoki::object::ObjectHandle {
    use cryptoki::object::{Attribute, ObjectClass};
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id.to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "private keys with CKA_ID {id:02x?}");
    found[0]
}

/// Environment variable that makes a test binary act as a child process of a test.
pub const CHILD_ROLE: &str = "TPMKEY_P11_TEST_CHILD";

/// This test binary again, running only the test `name` (a child role, which reads
/// `CHILD_ROLE` and does nothing without it), with the module environment inherited.
pub fn child(name: &str, role: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ROLE, role);
    cmd
}

/// The role this process was started with by [`child`], if any.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// The CK_RV of a PKCS#11 error.
pub fn rv(e: cryptoki::error::Error) -> cryptoki::error::RvError {
    match e {
        cryptoki::error::Error::Pkcs11(rv, _) => rv,
        other => panic!("expected a PKCS#11 error, got {other}"),
    }
}

/// The loaded module's function list, for calls the `cryptoki` crate cannot make (counts
/// and buffers of the caller's choosing). `load()` must have run.
pub fn function_list() -> &'static cryptoki_sys::CK_FUNCTION_LIST {
    use cryptoki_sys::{CKR_OK, CK_FUNCTION_LIST_PTR, CK_FUNCTION_LIST_PTR_PTR, CK_RV};
    let path = std::ffi::CString::new(module_path().to_str().unwrap()).unwrap();
    // SAFETY: dlopen/dlsym of the module this process loaded; C_GetFunctionList has the
    // PKCS#11 signature; the list it returns lives as long as the module, which stays loaded.
    unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        assert!(!h.is_null(), "module not loaded");
        let sym = libc::dlsym(h, c"C_GetFunctionList".as_ptr());
        assert!(!sym.is_null());
        let get: unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV = std::mem::transmute(sym);
        let mut list: CK_FUNCTION_LIST_PTR = std::ptr::null_mut();
        assert_eq!(get(&mut list), CKR_OK);
        &*list
    }
}
