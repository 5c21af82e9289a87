//! Shared by the core's integration tests: one swtpm per test, the process-wide
//! connection pointed at it, tests in one binary serialised (they share that connection).

#![allow(clippy::unwrap_used, clippy::panic)]
#![allow(dead_code)]

pub use tpmkey_testenv::wire_tap;
pub use tpmkey_testenv::TpmEndpoint;

pub mod signing;

use std::sync::MutexGuard;

use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Rsa;
use tpmkey::public_key::PublicKey;
use tpmkey_testenv::{StoragePrimary, Swtpm};

pub struct TestTpm {
    pub swtpm: Swtpm,
    _serial: MutexGuard<'static, ()>,
}

impl Drop for TestTpm {
    fn drop(&mut self) {
        tpmkey::connection::shutdown();
    }
}

/// A fresh swtpm with the connection configured for it (`extra` settings win).
pub fn tpm_with(extra: &[(&str, &str)]) -> TestTpm {
    let serial = tpmkey_testenv::serial();
    let swtpm = Swtpm::start();
    let tcti = swtpm.tcti();
    let mut settings = vec![("tcti", tcti.as_str())];
    settings.extend_from_slice(extra);
    tpmkey::connection::configure(&settings).expect("configure");
    TestTpm {
        swtpm,
        _serial: serial,
    }
}

pub fn tpm() -> TestTpm {
    tpm_with(&[])
}

/// The key's public half as an OpenSSL key, to verify with software only.
pub fn openssl_public(key: &PublicKey) -> PKey<Public> {
    match key {
        PublicKey::Ec { curve, x, y } => {
            let nid = match curve {
                tpmkey::public_key::Curve::P256 => Nid::X9_62_PRIME256V1,
                tpmkey::public_key::Curve::P384 => Nid::SECP384R1,
            };
            let group = EcGroup::from_curve_name(nid).unwrap();
            let mut bytes = vec![4u8];
            bytes.extend_from_slice(x);
            bytes.extend_from_slice(y);
            let mut ctx = openssl::bn::BigNumContext::new().unwrap();
            let point = EcPoint::from_bytes(&group, &bytes, &mut ctx).unwrap();
            PKey::from_ec_key(EcKey::from_public_key(&group, &point).unwrap()).unwrap()
        }
        PublicKey::Rsa { modulus, exponent } => {
            let n = BigNum::from_slice(modulus).unwrap();
            let e = BigNum::from_u32(*exponent).unwrap();
            PKey::from_rsa(Rsa::from_public_components(n, e).unwrap()).unwrap()
        }
    }
}

/// A fresh swtpm seen through a wire tap; the connection talks to the tap.
pub fn tapped_tpm(extra: &[(&str, &str)]) -> (TestTpm, wire_tap::WireTap) {
    let t = tpm_with(extra);
    let tap = wire_tap::WireTap::start(t.swtpm.port());
    let tcti = tap.tcti();
    let mut settings = vec![("tcti", tcti.as_str())];
    settings.extend_from_slice(extra);
    tpmkey::connection::configure(&settings).expect("configure");
    (t, tap)
}

/// Makes tpm2-tools' default storage primary persistent at `handle`.
pub fn persistent_storage_key(swtpm: &Swtpm, handle: &str) {
    StoragePrimary::TOOLS_DEFAULT.persist(swtpm, handle);
}
