//! The primitives a salted HMAC session needs, in pure Rust so that nothing on the TPM
//! path re-enters libcrypto (we run inside OpenSSL providers and engine-loading hosts).
//! KDFa and KDFe (TPM 2.0 Part 1, 11.4.10) are built on top of the trait.

use aes::Aes128;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub trait SessionCrypto: Send + Sync {
    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32];
    fn hmac_sha256(&self, key: &[u8], parts: &[&[u8]]) -> [u8; 32];
    fn aes128_cfb(&self, key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) -> Result<()>;
    fn random(&self, out: &mut [u8]);
    /// Ephemeral ECDH on P-256 against (x, y): returns Z and the ephemeral public point.
    fn p256_ephemeral_ecdh(&self, x: &[u8], y: &[u8]) -> Result<EphemeralEcdh>;
}

#[allow(missing_debug_implementations)] // holds Z: never printed
pub struct EphemeralEcdh {
    pub z: Zeroizing<[u8; 32]>,
    pub x: [u8; 32],
    pub y: [u8; 32],
}

#[derive(Debug, Default)]
pub struct RustCrypto;

pub static CRYPTO: RustCrypto = RustCrypto;

fn left_pad32(v: &[u8]) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    let v = strip_leading_zeros(v);
    if v.len() > 32 {
        return Err(Error::BadInput(
            "P-256 coordinate longer than 32 bytes".into(),
        ));
    }
    out[32 - v.len()..].copy_from_slice(v);
    Ok(out)
}

fn strip_leading_zeros(v: &[u8]) -> &[u8] {
    let n = v.iter().take_while(|b| **b == 0).count();
    &v[n..]
}

impl SessionCrypto for RustCrypto {
    fn sha256(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn hmac_sha256(&self, key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        // HMAC takes keys of any length: new_from_slice cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            return [0; 32];
        };
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    fn aes128_cfb(&self, key: &[u8], iv: &[u8], data: &mut [u8], encrypt: bool) -> Result<()> {
        use cfb_mode::cipher::KeyIvInit;
        let bad = |_| Error::BadInput("AES-128-CFB needs a 16-byte key and IV".into());
        if encrypt {
            cfb_mode::BufEncryptor::<Aes128>::new_from_slices(key, iv)
                .map_err(bad)?
                .encrypt(data);
        } else {
            cfb_mode::BufDecryptor::<Aes128>::new_from_slices(key, iv)
                .map_err(bad)?
                .decrypt(data);
        }
        Ok(())
    }

    fn random(&self, out: &mut [u8]) {
        OsRng.fill_bytes(out);
    }

    fn p256_ephemeral_ecdh(&self, x: &[u8], y: &[u8]) -> Result<EphemeralEcdh> {
        let (x, y) = (left_pad32(x)?, left_pad32(y)?);
        let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
        let peer = Option::<p256::PublicKey>::from(p256::PublicKey::from_encoded_point(&point))
            .ok_or_else(|| Error::Integrity("storage key public point is not on P-256".into()))?;
        let secret = p256::ecdh::EphemeralSecret::random(&mut OsRng);
        let shared = secret.diffie_hellman(&peer);
        let mut z = Zeroizing::new([0u8; 32]);
        z.copy_from_slice(shared.raw_secret_bytes());
        let public = secret.public_key().to_encoded_point(false);
        let (Some(ex), Some(ey)) = (public.x(), public.y()) else {
            return Err(Error::Integrity("ephemeral point at infinity".into()));
        };
        Ok(EphemeralEcdh {
            z,
            x: left_pad32(ex)?,
            y: left_pad32(ey)?,
        })
    }
}

/// KDFa with SHA-256 (Part 1, 11.4.10.2); `label` without its NUL, which is hashed.
pub fn kdfa(
    c: &dyn SessionCrypto,
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    counter_mode(bits, |i| {
        c.hmac_sha256(
            key,
            &[
                &i.to_be_bytes(),
                label.as_bytes(),
                &[0],
                context_u,
                context_v,
                &bits.to_be_bytes(),
            ],
        )
    })
}

/// KDFe with SHA-256 (Part 1, 11.4.10.3): a plain hash, no bit-length field.
pub fn kdfe(
    c: &dyn SessionCrypto,
    z: &[u8],
    label: &str,
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Zeroizing<Vec<u8>> {
    counter_mode(bits, |i| {
        c.sha256(&[
            &i.to_be_bytes(),
            z,
            label.as_bytes(),
            &[0],
            party_u,
            party_v,
        ])
    })
}

/// Concatenates blocks 1, 2, ... until `bits` are produced (both KDFs of Part 1, 11.4.10).
fn counter_mode(bits: u32, block: impl Fn(u32) -> [u8; 32]) -> Zeroizing<Vec<u8>> {
    let bytes = bits.div_ceil(8) as usize;
    let mut out = Zeroizing::new(Vec::with_capacity(bytes + 32));
    let mut i: u32 = 1;
    while out.len() < bytes {
        out.extend_from_slice(&block(i));
        i += 1;
    }
    out.truncate(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfb_round_trip_partial_block() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        let mut data: Vec<u8> = (0..37).collect();
        CRYPTO.aes128_cfb(&key, &iv, &mut data, true).unwrap();
        assert_ne!(data, (0..37).collect::<Vec<u8>>());
        CRYPTO.aes128_cfb(&key, &iv, &mut data, false).unwrap();
        assert_eq!(data, (0..37).collect::<Vec<u8>>());
    }

    #[test]
    fn kdfa_is_hmac_counter_mode() {
        let k = kdfa(&CRYPTO, b"key", "ATH", b"u", b"v", 256);
        let expect = CRYPTO.hmac_sha256(
            b"key",
            &[
                &1u32.to_be_bytes(),
                b"ATH\0",
                b"u",
                b"v",
                &256u32.to_be_bytes(),
            ],
        );
        assert_eq!(&k[..], &expect[..]);
        assert_eq!(
            kdfa(&CRYPTO, b"key", "CFB", b"u", b"v", 256 + 128).len(),
            48
        );
    }

    #[test]
    fn ecdh_agrees() {
        let secret = p256::SecretKey::random(&mut OsRng);
        let p = secret.public_key().to_encoded_point(false);
        let e = CRYPTO
            .p256_ephemeral_ecdh(p.x().unwrap(), p.y().unwrap())
            .unwrap();
        let ep = p256::EncodedPoint::from_affine_coordinates(&e.x.into(), &e.y.into(), false);
        let epk = p256::PublicKey::from_encoded_point(&ep).unwrap();
        let z = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), epk.as_affine());
        assert_eq!(z.raw_secret_bytes().as_slice(), &e.z[..]);
    }
}
