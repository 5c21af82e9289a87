//! TPMKEY-EPHEMERAL-EC: software-only EC keys for the ECDHE key exchange of the NIST TLS
//! groups tpmkey declares (see `capabilities`). OpenSSL 3.0's libssl keeps a TLS group only
//! when the key management of the group's algorithm comes from the provider that declared
//! it; with tpmkey listed first, "EC" resolves to tpmkey's TPM key management, so libssl
//! would drop the default provider's P-256/P-384 groups, and an ephemeral key made through
//! "EC" would be a TPM key per handshake. These keys live in memory only (RustCrypto p256
//! and p384): nothing here touches the TPM.

pub(crate) mod keyexch;
pub(crate) mod keymgmt;

use std::ffi::CStr;
use std::fmt;

use p256::elliptic_curve::ecdh::diffie_hellman;
use p256::elliptic_curve::rand_core::OsRng;
use p256::elliptic_curve::sec1::{FromEncodedPoint, ModulusSize, ToEncodedPoint};
use p256::elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize, PublicKey, SecretKey};
use tpmkey::public_key::Curve;
use tpmkey::{Error, Result};
use zeroize::Zeroizing;

/// The algorithm name of the key management and key exchange, and the TLS groups'
/// `tls-group-alg`.
pub(crate) const NAME: &CStr = c"TPMKEY-EPHEMERAL-EC";

/// A private scalar (zeroized on drop by the RustCrypto types).
#[derive(Clone)]
enum Secret {
    P256(SecretKey<p256::NistP256>),
    P384(SecretKey<p384::NistP384>),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// An ephemeral key: a curve (domain parameters), then a public point, and for the keys
/// generated here the private scalar.
#[derive(Clone, Debug, Default)]
pub(crate) struct EphemeralKey {
    curve: Option<Curve>,
    secret: Option<Secret>,
    /// The uncompressed point 04 || x || y, checked to lie on the curve.
    public: Option<Vec<u8>>,
}

fn uncompressed<C>(key: &PublicKey<C>) -> Vec<u8>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    key.as_affine().to_encoded_point(false).as_bytes().to_vec()
}

fn point_on<C>(curve: Curve, encoded: &[u8]) -> Result<PublicKey<C>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    PublicKey::<C>::from_sec1_bytes(encoded).map_err(|_| {
        Error::BadInput(format!(
            "the EC public key ({} bytes) is not a point on {}",
            encoded.len(),
            curve.name()
        ))
    })
}

fn shared_x<C>(secret: &SecretKey<C>, curve: Curve, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>>
where
    C: CurveArithmetic,
    FieldBytesSize<C>: ModulusSize,
    AffinePoint<C>: FromEncodedPoint<C> + ToEncodedPoint<C>,
{
    let peer = point_on::<C>(curve, peer)?;
    let shared = diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
    Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
}

/// Checks that `encoded` (SEC1) is a point on `curve`; also for keymgmt validation of
/// other EC keys.
pub(crate) fn check_point(curve: Curve, encoded: &[u8]) -> Result<()> {
    match curve {
        Curve::P256 => point_on::<p256::NistP256>(curve, encoded).map(|_| ()),
        Curve::P384 => point_on::<p384::NistP384>(curve, encoded).map(|_| ()),
    }
}

impl EphemeralKey {
    /// Domain parameters only (what libssl's parameter generation asks for).
    pub(crate) fn for_curve(curve: Curve) -> EphemeralKey {
        EphemeralKey {
            curve: Some(curve),
            ..EphemeralKey::default()
        }
    }

    /// A new key pair from the operating system's random generator.
    pub(crate) fn generate(curve: Curve) -> EphemeralKey {
        let (secret, public) = match curve {
            Curve::P256 => {
                let s = SecretKey::<p256::NistP256>::random(&mut OsRng);
                let p = uncompressed(&s.public_key());
                (Secret::P256(s), p)
            }
            Curve::P384 => {
                let s = SecretKey::<p384::NistP384>::random(&mut OsRng);
                let p = uncompressed(&s.public_key());
                (Secret::P384(s), p)
            }
        };
        EphemeralKey {
            curve: Some(curve),
            secret: Some(secret),
            public: Some(public),
        }
    }

    pub(crate) fn curve(&self) -> Result<Curve> {
        self.curve
            .ok_or_else(|| Error::BadInput("the ephemeral EC key has no group".into()))
    }

    pub(crate) fn set_curve(&mut self, curve: Curve) {
        if self.curve != Some(curve) {
            *self = EphemeralKey::for_curve(curve);
        }
    }

    /// Sets the public point (any SEC1 encoding); a point off the curve is refused.
    pub(crate) fn set_public(&mut self, encoded: &[u8]) -> Result<()> {
        let curve = self.curve()?;
        let point = match curve {
            Curve::P256 => uncompressed(&point_on::<p256::NistP256>(curve, encoded)?),
            Curve::P384 => uncompressed(&point_on::<p384::NistP384>(curve, encoded)?),
        };
        self.secret = None;
        self.public = Some(point);
        Ok(())
    }

    /// The uncompressed public point.
    pub(crate) fn public(&self) -> Result<&[u8]> {
        self.public
            .as_deref()
            .ok_or_else(|| Error::BadInput("the ephemeral EC key has no public point".into()))
    }

    pub(crate) fn has_public(&self) -> bool {
        self.public.is_some()
    }

    pub(crate) fn has_private(&self) -> bool {
        self.secret.is_some()
    }

    /// The same key without its private scalar.
    pub(crate) fn public_only(&self) -> EphemeralKey {
        EphemeralKey {
            secret: None,
            ..self.clone()
        }
    }

    /// The domain parameters only.
    pub(crate) fn parameters_only(&self) -> EphemeralKey {
        EphemeralKey {
            curve: self.curve,
            ..EphemeralKey::default()
        }
    }

    /// ECDH: Z = x(d * peer), for a peer on the same curve.
    pub(crate) fn derive(&self, peer: &EphemeralKey) -> Result<Zeroizing<Vec<u8>>> {
        let (ours, theirs) = (self.curve()?, peer.curve()?);
        if ours != theirs {
            return Err(Error::BadInput(format!(
                "the peer key is on {} but ours on {}",
                theirs.name(),
                ours.name()
            )));
        }
        let point = peer.public()?;
        match &self.secret {
            Some(Secret::P256(s)) => shared_x(s, ours, point),
            Some(Secret::P384(s)) => shared_x(s, ours, point),
            None => Err(Error::BadInput(
                "ECDH with an ephemeral key that has no private part".into(),
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_secret_and_bad_points_are_refused() {
        for curve in [Curve::P256, Curve::P384] {
            let a = EphemeralKey::generate(curve);
            let b = EphemeralKey::generate(curve);
            let mut peer = EphemeralKey::for_curve(curve);
            peer.set_public(b.public().unwrap()).unwrap();
            let z = a.derive(&peer).unwrap();
            assert_eq!(z.len(), curve.coordinate_len());
            assert_eq!(*z, *b.derive(&a.public_only()).unwrap());
            let mut off_curve = b.public().unwrap().to_vec();
            let last = off_curve.len() - 1;
            off_curve[last] ^= 1;
            assert!(peer.set_public(&off_curve).is_err());
            assert!(a.public_only().derive(&peer).is_err());
        }
        let other = EphemeralKey::generate(Curve::P384);
        assert!(EphemeralKey::generate(Curve::P256).derive(&other).is_err());
    }
}
