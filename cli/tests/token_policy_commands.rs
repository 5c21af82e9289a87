//! What a token's platform policy costs at the TPM, counted on the wire (the module loaded
//! in this process through cryptoki, its TCTI a tap in front of swtpm, `objects = keep`):
//! C_Sign of a key in a token with a platform policy is PolicyPCR + PolicyAuthValue + Sign
//! in steady state (the PIN-derived authValue is checked by the TPM, in the HMAC of the
//! kept policy session), and of a key in a token without one still the one TPM2_Sign. In
//! another platform state C_Sign, C_Decrypt and C_DeriveKey answer CKR_FUNCTION_REJECTED.
//! Its own test binary: the module reads its configuration from this process's environment.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{stderr, TokenEnv};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use tpmkey_testenv::TpmEndpoint;

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
    t.tool(&[
        "--token-label",
        "bound",
        "--login",
        "--pin",
        USER_PIN,
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--id",
        "02",
    ]);

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
        let s = user_session(&p, label);
        let key = key(&s, ObjectClass::PRIVATE_KEY, 1);
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

    // Another platform state: every private-key operation is refused as "not now", the
    // token and its objects stay visible.
    t.env.swtpm.tpm2_tools_ok([
        "tpm2_pcrextend",
        "16:sha256=0000000000000000000000000000000000000000000000000000000000000001",
    ]);
    let s = user_session(&p, "bound");
    let (ec, rsa) = (
        key(&s, ObjectClass::PRIVATE_KEY, 1),
        key(&s, ObjectClass::PRIVATE_KEY, 2),
    );
    let rejected = |e: cryptoki::error::Error| match e {
        cryptoki::error::Error::Pkcs11(rv, _) => rv,
        e => panic!("{e}"),
    };
    let e = s.sign(&Mechanism::EcdsaSha256, ec, b"x").unwrap_err();
    assert_eq!(rejected(e), RvError::FunctionRejected);
    let enc = s
        .encrypt(
            &Mechanism::RsaPkcs,
            key(&s, ObjectClass::PUBLIC_KEY, 2),
            b"secret",
        )
        .unwrap();
    let e = s.decrypt(&Mechanism::RsaPkcs, rsa, &enc).unwrap_err();
    assert_eq!(rejected(e), RvError::FunctionRejected);
    let point = match s
        .get_attributes(
            key(&s, ObjectClass::PUBLIC_KEY, 1),
            &[AttributeType::EcPoint],
        )
        .unwrap()
        .pop()
    {
        Some(Attribute::EcPoint(der)) => der[2..].to_vec(),
        other => panic!("{other:?}"),
    };
    let e = s
        .derive_key(
            &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &point)),
            ec,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .unwrap_err();
    assert_eq!(rejected(e), RvError::FunctionRejected);
    let slot = s.get_session_info().unwrap().slot_id();
    assert_eq!(p.get_token_info(slot).unwrap().label(), "bound");
    drop(s);
    p.finalize().unwrap();
}

/// A session on the token `label` where the user is logged in.
fn user_session(p: &Pkcs11, label: &str) -> Session {
    let slot = p
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| p.get_token_info(*s).unwrap().label() == label)
        .unwrap();
    let s = p.open_rw_session(slot).unwrap();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    s
}

/// The object of `class` with CKA_ID `id`.
fn key(s: &Session, class: ObjectClass, id: u8) -> ObjectHandle {
    s.find_objects(&[Attribute::Class(class), Attribute::Id(vec![id])])
        .unwrap()[0]
}
