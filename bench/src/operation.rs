//! The four operations the throughput rows measure, the inputs they consume and the check
//! that a result is right (run once per batch, outside the timed loop).

use openssl::bn::{BigNum, BigNumContext};
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::ecdsa::EcdsaSig;
use openssl::encrypt::Encrypter;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::Verifier;
use tpmkey::hash::Hash;
use tpmkey::public_key::PublicKey;

/// What every signing row signs (the EVP and PKCS#11 rows hash it themselves).
pub const MESSAGE: &[u8] = b"tpmkey bench: the message every signing row signs";
/// What the OAEP rows decrypt.
pub const PLAINTEXT: &[u8] = b"tpmkey bench: a 32-byte secret..";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    EcdsaP256,
    RsaSign,
    RsaOaep,
    EcdhP256,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::EcdsaP256, Op::RsaSign, Op::RsaOaep, Op::EcdhP256];

    pub fn id(self) -> &'static str {
        match self {
            Op::EcdsaP256 => "ecdsa-p256",
            Op::RsaSign => "rsa2048-sign",
            Op::RsaOaep => "rsa2048-oaep",
            Op::EcdhP256 => "ecdh-p256",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Op::EcdsaP256 => "ECDSA P-256 sign (SHA-256)",
            Op::RsaSign => "RSA-2048 sign (PKCS#1 v1.5, SHA-256)",
            Op::RsaOaep => "RSA-2048 OAEP decrypt (SHA-256)",
            Op::EcdhP256 => "ECDH P-256 derive",
        }
    }

    pub fn parse(s: &str) -> Result<Op, String> {
        Op::ALL
            .into_iter()
            .find(|op| op.id() == s)
            .ok_or_else(|| format!("unknown operation \"{s}\""))
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, Op::RsaSign | Op::RsaOaep)
    }

    /// The TSS2 key file the runner provisions for this operation.
    pub fn key_file_name(self) -> &'static str {
        if self.is_rsa() {
            "rsa.pem"
        } else {
            "ec.pem"
        }
    }

    /// The label of the token key the PKCS#11 rows use.
    pub fn token_label(self) -> &'static str {
        if self.is_rsa() {
            "bench-rsa"
        } else {
            "bench-ec"
        }
    }
}

/// The SHA-256 digest of [`MESSAGE`].
pub fn digest() -> Vec<u8> {
    Hash::Sha256.digest(&[MESSAGE])
}

/// What one operation produced, in the form its stack returns it.
#[derive(Debug)]
pub enum Output {
    /// ECDSA r and s as separate big-endian integers.
    EcdsaRs(Vec<u8>, Vec<u8>),
    /// ECDSA as a DER Ecdsa-Sig-Value (what EVP returns).
    EcdsaDer(Vec<u8>),
    /// ECDSA as r || s (what PKCS#11 returns).
    EcdsaConcat(Vec<u8>),
    Rsa(Vec<u8>),
    /// An OAEP plaintext or an ECDH shared secret.
    Secret(Vec<u8>),
    /// How many things a lookup found (slots, objects).
    Count(usize),
}

/// The inputs of one operation on one key, and what its result must be.
#[allow(missing_debug_implementations)]
pub struct Inputs {
    pub op: Op,
    pub digest: Vec<u8>,
    /// OAEP: the ciphertext of [`PLAINTEXT`] under the key.
    pub ciphertext: Vec<u8>,
    /// ECDH: the peer's public point.
    pub peer_x: Vec<u8>,
    pub peer_y: Vec<u8>,
    pub peer: Option<PKey<Public>>,
    /// ECDH: the shared secret the peer computes.
    expected_secret: Vec<u8>,
    public: PKey<Public>,
}

fn ssl(what: &str) -> impl Fn(openssl::error::ErrorStack) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The key's public half as an OpenSSL key.
pub fn public_pkey(key: &PublicKey) -> Result<PKey<Public>, String> {
    match key {
        PublicKey::Ec { x, y, .. } => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ssl("P-256"))?;
            let x = BigNum::from_slice(x).map_err(ssl("x"))?;
            let y = BigNum::from_slice(y).map_err(ssl("y"))?;
            let ec = EcKey::from_public_key_affine_coordinates(&group, &x, &y)
                .map_err(ssl("EC public key"))?;
            PKey::from_ec_key(ec).map_err(ssl("EC public key"))
        }
        PublicKey::Rsa { modulus, exponent } => {
            let rsa = Rsa::from_public_components(
                BigNum::from_slice(modulus).map_err(ssl("modulus"))?,
                BigNum::from_u32(*exponent).map_err(ssl("exponent"))?,
            )
            .map_err(ssl("RSA public key"))?;
            PKey::from_rsa(rsa).map_err(ssl("RSA public key"))
        }
    }
}

impl Inputs {
    pub fn new(op: Op, public: PKey<Public>) -> Result<Inputs, String> {
        let mut inputs = Inputs {
            op,
            digest: digest(),
            ciphertext: Vec::new(),
            peer_x: Vec::new(),
            peer_y: Vec::new(),
            peer: None,
            expected_secret: Vec::new(),
            public,
        };
        match op {
            Op::RsaOaep => {
                let mut enc = Encrypter::new(&inputs.public).map_err(ssl("encrypter"))?;
                enc.set_rsa_padding(Padding::PKCS1_OAEP)
                    .map_err(ssl("OAEP"))?;
                enc.set_rsa_oaep_md(MessageDigest::sha256())
                    .map_err(ssl("OAEP hash"))?;
                enc.set_rsa_mgf1_md(MessageDigest::sha256())
                    .map_err(ssl("MGF1 hash"))?;
                let mut ct = vec![0u8; enc.encrypt_len(PLAINTEXT).map_err(ssl("OAEP"))?];
                let n = enc.encrypt(PLAINTEXT, &mut ct).map_err(ssl("OAEP"))?;
                ct.truncate(n);
                inputs.ciphertext = ct;
            }
            Op::EcdhP256 => {
                let group =
                    EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(ssl("P-256"))?;
                let peer = EcKey::generate(&group).map_err(ssl("peer key"))?;
                let mut ctx = BigNumContext::new().map_err(ssl("bn"))?;
                let (mut x, mut y) = (
                    BigNum::new().map_err(ssl("bn"))?,
                    BigNum::new().map_err(ssl("bn"))?,
                );
                peer.public_key()
                    .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
                    .map_err(ssl("peer point"))?;
                inputs.peer_x = x.to_vec_padded(32).map_err(ssl("x"))?;
                inputs.peer_y = y.to_vec_padded(32).map_err(ssl("y"))?;
                let peer_private = PKey::from_ec_key(peer.clone()).map_err(ssl("peer key"))?;
                let mut d = Deriver::new(&peer_private).map_err(ssl("deriver"))?;
                d.set_peer(&inputs.public).map_err(ssl("deriver peer"))?;
                inputs.expected_secret = d.derive_to_vec().map_err(ssl("derive"))?;
                let point = EcPoint::from_bytes(&group, &inputs.peer_point(), &mut ctx)
                    .map_err(ssl("peer point"))?;
                let peer_public = EcKey::from_public_key(&group, &point).map_err(ssl("peer"))?;
                inputs.peer = Some(PKey::from_ec_key(peer_public).map_err(ssl("peer"))?);
            }
            Op::EcdsaP256 | Op::RsaSign => {}
        }
        Ok(inputs)
    }

    /// The peer point uncompressed: 04 || x || y.
    pub fn peer_point(&self) -> Vec<u8> {
        let mut p = vec![4u8];
        p.extend_from_slice(&self.peer_x);
        p.extend_from_slice(&self.peer_y);
        p
    }

    /// Verifies a result against the key's public half (or the known secret).
    pub fn check(&self, out: &Output) -> Result<(), String> {
        let ok = match (self.op, out) {
            (Op::EcdsaP256, Output::EcdsaRs(r, s)) => self.ecdsa_ok(r, s)?,
            (Op::EcdsaP256, Output::EcdsaConcat(rs)) if rs.len() % 2 == 0 => {
                let (r, s) = rs.split_at(rs.len() / 2);
                self.ecdsa_ok(r, s)?
            }
            (Op::EcdsaP256, Output::EcdsaDer(der)) => {
                let sig = EcdsaSig::from_der(der).map_err(ssl("ECDSA DER"))?;
                self.ecdsa_ok(&sig.r().to_vec(), &sig.s().to_vec())?
            }
            (Op::RsaSign, Output::Rsa(sig)) => {
                let mut v = Verifier::new(MessageDigest::sha256(), &self.public)
                    .map_err(ssl("verifier"))?;
                v.verify_oneshot(sig, MESSAGE).map_err(ssl("RSA verify"))?
            }
            (Op::RsaOaep, Output::Secret(p)) => p.as_slice() == PLAINTEXT,
            (Op::EcdhP256, Output::Secret(z)) => *z == self.expected_secret,
            (op, out) => return Err(format!("{op:?} produced an unexpected {out:?}")),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{}: the result does not verify", self.op.title()))
        }
    }

    fn ecdsa_ok(&self, r: &[u8], s: &[u8]) -> Result<bool, String> {
        let sig = EcdsaSig::from_private_components(
            BigNum::from_slice(r).map_err(ssl("r"))?,
            BigNum::from_slice(s).map_err(ssl("s"))?,
        )
        .map_err(ssl("ECDSA signature"))?;
        let ec = self.public.ec_key().map_err(ssl("EC key"))?;
        sig.verify(&self.digest, &ec).map_err(ssl("ECDSA verify"))
    }
}
