//! Shared by the module's black-box tests: a real swtpm per test, a private store, the
//! built `libtpmkey_pkcs11.so` loaded through the `cryptoki` crate. The module reads its
//! configuration from the environment, which is process-wide: tests of one binary run
//! one at a time.

#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tpmkey_testenv::Swtpm;

pub const SO_PIN: &str = "so-secret";
pub const USER_PIN: &str = "123456";

static SERIAL: Mutex<()> = Mutex::new(());

/// The cdylib next to this test's executable (target/<profile>/). `cargo test` does not
/// always relink the cdylib when only a dependency changed, so it is built once here.
pub fn module_path() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().and_then(|d| d.parent()).unwrap();
            let mut cargo = std::process::Command::new(env!("CARGO"));
            cargo
                .args(["build", "--lib", "-p", "tpmkey-pkcs11"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if dir.ends_with("release") {
                cargo.arg("--release");
            }
            tpmkey_testenv::run(&mut cargo);
            let path = dir.join("libtpmkey_pkcs11.so");
            assert!(path.exists(), "{} not built", path.display());
            path
        })
        .clone()
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "tpmkey-p11-{what}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A swtpm, a store, and the environment pointing the module at them.
pub struct TestEnv {
    pub swtpm: Swtpm,
    pub store: TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl TestEnv {
    pub fn new(objects: &str) -> TestEnv {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
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
