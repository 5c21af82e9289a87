//! Random numbers the way users ask for them: `openssl rand -provider tpmkey` (alone or
//! with the base provider) prints bytes from the provider's DRBG, seeded from the TPM
//! (TPM2_GetRandom on the wire); with the default provider loaded, in either order, the
//! default DRBG serves RAND_bytes and the TPM is not asked.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{run, stdout, Env, ORDERS};

const TPM2_GET_RANDOM: u32 = 0x17B;

fn hex_line(out: &str, bytes: usize) -> String {
    let line = out.trim().to_string();
    assert_eq!(line.len(), bytes * 2, "not {bytes} hex bytes: {out:?}");
    assert!(line.bytes().all(|b| b.is_ascii_hexdigit()), "{out:?}");
    line
}

#[test]
fn openssl_rand_with_tpmkey_alone_or_with_base_comes_from_the_tpm() {
    let (env, tap) = Env::tapped();
    for extra in [&[][..], &["-provider", "base"][..]] {
        let mut seen = Vec::new();
        for _ in 0..2 {
            tap.take_codes();
            let out = run(env.tpmkey_only("rand").args(extra).args(["-hex", "10"]));
            let codes = tap.take_codes();
            eprintln!("tpmkey {extra:?}: {codes:x?}");
            assert!(
                codes.contains(&TPM2_GET_RANDOM),
                "{extra:?}: no TPM2_GetRandom on the wire: {codes:x?}"
            );
            seen.push(hex_line(&stdout(&out), 10));
        }
        assert_ne!(seen[0], seen[1], "{extra:?}: the same bytes twice");
        // A larger request is served by the DRBG, not by one TPM command per block.
        tap.take_codes();
        let out = run(env.tpmkey_only("rand").args(extra).args(["-hex", "4096"]));
        hex_line(&stdout(&out), 4096);
        let codes = tap.take_codes();
        let get_random = codes.iter().filter(|c| **c == TPM2_GET_RANDOM).count();
        assert!(get_random <= 2, "{extra:?}: {codes:x?}");
    }
}

#[test]
fn with_the_default_provider_rand_never_reaches_the_tpm() {
    let (env, tap) = Env::tapped();
    for order in ORDERS {
        tap.take_codes();
        let out = run(env.openssl(order, "rand").args(["-hex", "32"]));
        hex_line(&stdout(&out), 32);
        assert_eq!(tap.take_codes(), Vec::<u32>::new(), "{order:?}");
    }
}
