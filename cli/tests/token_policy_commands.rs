//! What a token's platform policy costs at the TPM, counted on the wire (the module loaded
//! in this process through cryptoki, its TCTI a tap in front of swtpm, `objects = keep`):
//! C_Sign of a key in a token with a platform policy is PolicyPCR + PolicyAuthValue + Sign
//! in steady state (the PIN-derived authValue is checked by the TPM, in the HMAC of the
//! kept policy session), and of a key in a token without one still the one TPM2_Sign. Its
//! own test binary: the module reads its configuration from this process's environment.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{stderr, TokenEnv};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

const SO_PIN: &str = "12345678";
const USER_PIN: &str = "4321";
const POLICY_PCR: u32 = 0x17F;
const POLICY_AUTH_VALUE: u32 = 0x16B;
const SIGN: u32 = 0x15D;

#[test]
fn platform_policy_costs_two_policy_commands_per_signature() {
    let t = TokenEnv::start();
    std::fs::write(t.env.path("so"), SO_PIN).unwrap();
    std::fs::write(t.env.path("pin"), USER_PIN).unwrap();
    for (label, policy) in [("bound", &["--pcr", "sha256:16"][..]), ("plain", &[][..])] {
        let (so, pin) = (
            format!("file:{}", t.env.path("so").display()),
            format!("file:{}", t.env.path("pin").display()),
        );
        let mut args = vec![
            "token", "init", "--label", label, "--so-pin", &so, "--pin", &pin,
        ];
        args.extend(policy);
        let r = t.tpmkey(&args);
        assert!(r.status.success(), "{}", stderr(&r));
        t.tool(&[
            "--token-label",
            label,
            "--login",
            "--pin",
            USER_PIN,
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "01",
        ]);
    }

    let tap = tpmkey_testenv::WireTap::start(t.env.swtpm.port());
    for (k, v) in t.vars() {
        std::env::set_var(k, v);
    }
    std::env::set_var("TPMKEY_TCTI", tap.tcti());
    std::env::set_var("TPMKEY_OBJECTS", "keep");
    let p = Pkcs11::new(&t.module).unwrap();
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
