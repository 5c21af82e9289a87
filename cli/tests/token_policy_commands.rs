//! What a token's platform policy costs at the TPM, counted on the wire (the module loaded
//! in this process through cryptoki, its TCTI a tap in front of swtpm, `objects = keep`):
//! C_Sign of a key in a token with a platform policy is PolicyPCR + PolicyAuthValue + Sign
//! in steady state (the PIN-derived authValue is checked by the TPM, in the HMAC of the
//! kept policy session), and of a key in a token without one still the one TPM2_Sign. Its
//! own test binary: the module reads its configuration from this process's environment.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{stderr, Env};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use tpmkey_testenv::pkcs11_module::module_path;

const SO_PIN: &str = "12345678";
const USER_PIN: &str = "4321";
const POLICY_PCR: u32 = 0x17F;
const POLICY_AUTH_VALUE: u32 = 0x16B;
const SIGN: u32 = 0x15D;

#[test]
fn platform_policy_costs_two_policy_commands_per_signature() {
    let env = Env::start();
    let module = module_path();
    let store = env.path("store");
    std::fs::write(env.path("so"), SO_PIN).unwrap();
    std::fs::write(env.path("pin"), USER_PIN).unwrap();
    let vars = |tcti: String| {
        vec![
            ("TPMKEY_TCTI", tcti),
            ("TPMKEY_CONF", "/dev/null".to_string()),
            ("TPMKEY_STORE", store.display().to_string()),
            ("TPMKEY_STATE", env.path("state").display().to_string()),
            ("TPMKEY_OBJECTS", "keep".to_string()),
        ]
    };
    for (label, policy) in [("bound", &["--pcr", "sha256:16"][..]), ("plain", &[][..])] {
        let (so, pin) = (
            format!("file:{}", env.path("so").display()),
            format!("file:{}", env.path("pin").display()),
        );
        let mut args = vec![
            "token", "init", "--label", label, "--so-pin", &so, "--pin", &pin,
        ];
        args.extend(policy);
        let r = Command::new(env!("CARGO_BIN_EXE_tpmkey"))
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(vars(env.swtpm.tcti()))
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", stderr(&r));
        let gen = Command::new("pkcs11-tool")
            .arg("--module")
            .arg(&module)
            .args(["--token-label", label, "--login", "--pin", USER_PIN])
            .args(["--keypairgen", "--key-type", "EC:prime256v1", "--id", "01"])
            .envs(vars(env.swtpm.tcti()))
            .output()
            .unwrap();
        assert!(gen.status.success(), "{}", stderr(&gen));
    }

    let tap = tpmkey_testenv::WireTap::start(env.swtpm.port());
    for (k, v) in vars(tap.tcti()) {
        std::env::set_var(k, v);
    }
    let p = Pkcs11::new(&module).unwrap();
    p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    for (label, per_signature) in [
        ("bound", vec![POLICY_PCR, POLICY_AUTH_VALUE, SIGN]),
        ("plain", vec![SIGN]),
    ] {
        let slot = p
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| p.get_token_info(*s).unwrap().label() == label)
            .unwrap();
        let s = p.open_ro_session(slot).unwrap();
        s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
            .unwrap();
        let key = s
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap()[0];
        // The first signatures load the key and let the storage key go.
        for _ in 0..2 {
            s.sign(&Mechanism::EcdsaSha256, key, b"warm up").unwrap();
        }
        tap.take_codes();
        for _ in 0..5 {
            s.sign(&Mechanism::EcdsaSha256, key, b"steady").unwrap();
        }
        let codes = tap.take_codes();
        eprintln!("token {label}: 5 x C_Sign = {codes:x?}");
        assert_eq!(codes, per_signature.repeat(5), "token {label}");
        s.logout().unwrap();
    }
    p.finalize().unwrap();
}
