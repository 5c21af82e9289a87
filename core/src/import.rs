//! Keys made outside the TPM, taken in by TPM2_Import (TPM 2.0 Part 1, 23 "Duplication";
//! Part 3, 13.3): a PEM private key (EC P-256/P-384, RSA 2048/3072/4096) wrapped for a
//! storage parent, online (through the salted session, with an inner wrapper) or offline
//! into an importable TSS2 key file that is imported once and then cached.
//!
//! ```text
//! sensitive   = TPM2B_SENSITIVE { type, authValue, seedValue = empty, d | prime p }
//! inner (online only): encryptionKey k random (AES-128-CFB), sent as TPM2_Import's first
//!     parameter, which the session encrypts;
//!     inner = AES-CFB(k, IV 0, TPM2B(SHA-256(sensitive ‖ name)) ‖ sensitive)
//! seed, inSymSeed = attest::credential::seed_for(parent, "DUPLICATE")
//! encSensitive = AES-128-CFB(KDFa(seed, "STORAGE", name, "", 128), IV 0, inner | sensitive)
//! duplicate    = TPM2B(TPM2B(HMAC(KDFa(seed, "INTEGRITY", "", "", 256),
//!                                 encSensitive ‖ name)) ‖ encSensitive)
//! ```
//!
//! The parent's parameters must be nameAlg SHA-256 and AES-128-CFB (the TCG storage key
//! templates, tpmkey's storage primary). Imported keys have fixedTPM, fixedParent and
//! sensitiveDataOrigin clear: the TPM refuses the first two for a duplicate, and the key
//! did not originate in the TPM.

use std::path::PathBuf;

use p256::elliptic_curve;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use tss_esapi::structures::{Public, SymmetricDefinitionObject};
use tss_esapi::traits::UnMarshall;
use zeroize::Zeroizing;

use crate::attest::credential::seed_for;
use crate::connection::{with_link, Need};
use crate::error::{Error, Result};
use crate::hex::hex;
use crate::keyfile::{pem_decode, KeyFile, KeyFileType};
use crate::policy::statement::public_name;
use crate::policy::SignerKey;
use crate::public_key::{Curve, KeyPublic, PublicKey};
use crate::session_crypto::{kdfa, SessionCrypto, CRYPTO};
use crate::store::files;
use crate::templates::{self, KeySpec};
use crate::wire::{tpm2b_contents, Writer, TPM_RH_OWNER};

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_ECC: u16 = 0x0023;
/// TPMA_OBJECT bits an imported key must not carry.
const FIXED_TPM: u32 = 1 << 1;
const FIXED_PARENT: u32 = 1 << 4;
const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
/// TPMA_OBJECT decrypt, cleared for a sign-only key.
const DECRYPT: u32 = 1 << 17;
const AES_128: usize = 16;

/// A private key read from PEM, its secret parts zeroized on drop.
pub struct SoftwareKey {
    public: PublicKey,
    /// The TPMU_SENSITIVE_COMPOSITE value: the EC scalar d, or the RSA prime p.
    secret: Zeroizing<Vec<u8>>,
    /// Imported with the sign attribute only (decrypt clear).
    sign_only: bool,
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("bits", &self.public.bits())
            .field("sign_only", &self.sign_only)
            .finish()
    }
}

impl SoftwareKey {
    /// A PEM private key: PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or PKCS#1
    /// ("RSA PRIVATE KEY"). Encrypted PEM is refused (decrypt it with openssl pkey first).
    pub fn from_pem(data: &[u8]) -> Result<SoftwareKey> {
        let has = |label: &str| {
            data.windows(label.len() + 11)
                .any(|w| w == format!("-----BEGIN {label}").as_bytes())
        };
        if has("ENCRYPTED PRIVATE KEY") || data.windows(9).any(|w| w == b"DEK-Info:") {
            return Err(Error::Unsupported(
                "encrypted PEM private keys: decrypt it first (openssl pkey -in KEY -out -)".into(),
            ));
        }
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            Error::BadInput(format!("{what} private key does not parse: {e}"))
        };
        if has("EC PRIVATE KEY") {
            let der = Zeroizing::new(pem_decode(data, "EC PRIVATE KEY")?);
            if let Ok(k) = p256::SecretKey::from_sec1_der(&der) {
                return Ok(Self::ec(&k, Curve::P256));
            }
            return p384::SecretKey::from_sec1_der(&der)
                .map(|k| Self::ec(&k, Curve::P384))
                .map_err(|e| bad("SEC1 EC (P-256 or P-384)", &e));
        }
        if has("RSA PRIVATE KEY") {
            let der = Zeroizing::new(pem_decode(data, "RSA PRIVATE KEY")?);
            let k = rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| bad("PKCS#1 RSA", &e))?;
            return Self::rsa(&k);
        }
        if has("PRIVATE KEY") {
            let der = Zeroizing::new(pem_decode(data, "PRIVATE KEY")?);
            if let Ok(k) = p256::SecretKey::from_pkcs8_der(&der) {
                return Ok(Self::ec(&k, Curve::P256));
            }
            if let Ok(k) = p384::SecretKey::from_pkcs8_der(&der) {
                return Ok(Self::ec(&k, Curve::P384));
            }
            return match rsa::RsaPrivateKey::from_pkcs8_der(&der) {
                Ok(k) => Self::rsa(&k),
                Err(e) => Err(bad("PKCS#8 (EC P-256, P-384 or RSA)", &e)),
            };
        }
        Err(Error::BadInput(
            "no PEM private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY) found".into(),
        ))
    }

    fn ec<C>(k: &elliptic_curve::SecretKey<C>, curve: Curve) -> SoftwareKey
    where
        C: elliptic_curve::CurveArithmetic,
        elliptic_curve::AffinePoint<C>: elliptic_curve::sec1::ToEncodedPoint<C>,
        elliptic_curve::FieldBytesSize<C>: elliptic_curve::sec1::ModulusSize,
    {
        use elliptic_curve::sec1::ToEncodedPoint;
        let point = k.public_key().as_affine().to_encoded_point(false);
        SoftwareKey {
            public: PublicKey::Ec {
                curve,
                x: point.x().map(|c| c.to_vec()).unwrap_or_default(),
                y: point.y().map(|c| c.to_vec()).unwrap_or_default(),
            },
            secret: Zeroizing::new(k.to_bytes().to_vec()),
            sign_only: false,
        }
    }

    fn rsa(k: &rsa::RsaPrivateKey) -> Result<SoftwareKey> {
        let modulus = k.n().to_bytes_be();
        let e = k.e().to_bytes_be();
        if e.len() > 4 {
            return Err(Error::Unsupported("RSA public exponents above 2^32".into()));
        }
        let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let prime = Zeroizing::new(
            k.primes()
                .first()
                .map(|p| p.to_bytes_be())
                .unwrap_or_default(),
        );
        if k.primes().len() != 2 || prime.len() * 2 != modulus.len() {
            return Err(Error::Unsupported(
                "RSA keys with more than two primes or unbalanced primes".into(),
            ));
        }
        Ok(SoftwareKey {
            public: PublicKey::Rsa { modulus, exponent },
            secret: prime,
            sign_only: false,
        })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Imports the key with the sign attribute only: it cannot decrypt or derive, and the
    /// TPM makes its RSA-PSS signatures itself, with the salt the TPM chooses (which
    /// tpmkey checks) instead of the host's encoding of the salt asked for.
    pub fn sign_only(mut self) -> SoftwareKey {
        self.sign_only = true;
        self
    }

    /// TPM2B_PUBLIC (with its size) of the key as imported: the key template of `keygen`
    /// with fixedTPM, fixedParent and sensitiveDataOrigin cleared and the public key filled in.
    fn tpm_public(&self, has_password: bool) -> Result<Vec<u8>> {
        let (spec, empty_unique) = match &self.public {
            PublicKey::Ec {
                curve: Curve::P256, ..
            } => (KeySpec::EcP256, 4),
            PublicKey::Ec {
                curve: Curve::P384, ..
            } => (KeySpec::EcP384, 4),
            PublicKey::Rsa { exponent, .. } => {
                if *exponent != 65537 {
                    return Err(Error::Unsupported(format!(
                        "RSA public exponent {exponent} (only 65537)"
                    )));
                }
                (KeySpec::Rsa(self.public.bits() as u16), 2)
            }
        };
        let mut t = Zeroizing::new(templates::key(spec, has_password)?);
        let cut = t.len().checked_sub(empty_unique).filter(|&c| c >= 8);
        let Some(cut) = cut.filter(|&c| t[c..].iter().all(|b| *b == 0)) else {
            return Err(Error::Integrity(
                "key template does not end with an empty unique".into(),
            ));
        };
        let mut cleared = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN;
        if self.sign_only {
            cleared |= DECRYPT;
        }
        let attrs = u32::from_be_bytes([t[4], t[5], t[6], t[7]]) & !cleared;
        t[4..8].copy_from_slice(&attrs.to_be_bytes());
        t.truncate(cut);
        let mut w = Writer::new();
        w.bytes(&t);
        match &self.public {
            PublicKey::Ec { x, y, .. } => w.tpm2b(x).tpm2b(y),
            PublicKey::Rsa { modulus, .. } => w.tpm2b(modulus),
        };
        let tpmt = w.into_vec();
        let mut out = Writer::new();
        out.tpm2b(&tpmt);
        Ok(out.into_vec())
    }

    /// TPM2B_SENSITIVE (with its size).
    fn tpm_sensitive(&self, auth: &[u8]) -> Zeroizing<Vec<u8>> {
        let alg = match self.public {
            PublicKey::Ec { .. } => TPM_ALG_ECC,
            PublicKey::Rsa { .. } => TPM_ALG_RSA,
        };
        let mut t = Writer::new();
        t.u16(alg).tpm2b(auth).tpm2b(&[]).tpm2b(&self.secret);
        let t = t.into_secret();
        let mut w = Writer::new();
        w.tpm2b(&t);
        w.into_secret()
    }
}

/// A duplicate ready for TPM2_Import.
struct Wrapped {
    public: Vec<u8>,
    /// TPM2B_PRIVATE with its size.
    duplicate: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET contents.
    in_sym_seed: Vec<u8>,
    /// The inner wrapper's key; empty without one.
    encryption_key: Zeroizing<Vec<u8>>,
}

fn wrap(
    key: &SoftwareKey,
    password: Option<&[u8]>,
    parent: &PublicKey,
    inner: bool,
) -> Result<Wrapped> {
    let auth = password.unwrap_or_default();
    if auth.len() > 32 {
        return Err(Error::BadInput(
            "key password longer than 32 bytes (the TPM's SHA-256 limit)".into(),
        ));
    }
    let public = key.tpm_public(!auth.is_empty())?;
    let name = public_name(&public)?;
    let sensitive = key.tpm_sensitive(auth);
    let mut encryption_key = Zeroizing::new(Vec::new());
    let mut plain = Zeroizing::new(Vec::new());
    if inner {
        encryption_key.resize(AES_128, 0);
        CRYPTO.random(&mut encryption_key);
        let integrity = CRYPTO.sha256(&[&sensitive, &name]);
        let mut w = Writer::new();
        w.tpm2b(&integrity).bytes(&sensitive);
        plain = w.into_secret();
        CRYPTO.aes128_cfb(&encryption_key, &[0u8; 16], &mut plain, true)?;
    } else {
        plain.extend_from_slice(&sensitive);
    }
    let (seed, in_sym_seed) = seed_for(parent, "DUPLICATE")?;
    let sym_key = kdfa(&CRYPTO, &seed, "STORAGE", &name, &[], 8 * AES_128 as u32);
    CRYPTO.aes128_cfb(&sym_key, &[0u8; 16], &mut plain, true)?;
    let hmac_key = kdfa(&CRYPTO, &seed, "INTEGRITY", &[], &[], 256);
    let outer = CRYPTO.hmac_sha256(&hmac_key, &[&plain, &name]);
    let mut body = Writer::new();
    body.tpm2b(&outer).bytes(&plain);
    let mut duplicate = Writer::new();
    duplicate.tpm2b(&body.into_vec());
    Ok(Wrapped {
        public,
        duplicate: duplicate.into_vec(),
        in_sym_seed,
        encryption_key,
    })
}

/// The public key of an import parent: a TPM2B_PUBLIC (`tpm2_readpublic -o`), which must be
/// a restricted decryption key with AES-128-CFB and nameAlg SHA-256, or a PEM public key,
/// taken to be such a storage key.
pub fn parent_public(data: &[u8]) -> Result<PublicKey> {
    let bad = |m: String| Error::BadInput(format!("parent public key: {m}"));
    if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        return SignerKey::from_pem(data)
            .map(|s| s.key().clone())
            .map_err(|e| bad(e.to_string()));
    }
    let key = KeyPublic::parse(data).map_err(|e| bad(e.to_string()))?;
    let tpmt = tpm2b_contents(data).map_err(|e| bad(e.to_string()))?;
    let symmetric = match Public::unmarshall(tpmt) {
        Ok(Public::Rsa { parameters, .. }) => parameters.symmetric_definition_object(),
        Ok(Public::Ecc { parameters, .. }) => parameters.symmetric_definition_object(),
        _ => return Err(bad("not an RSA or ECC key".into())),
    };
    if !key.restricted || !key.can_decrypt || symmetric != SymmetricDefinitionObject::AES_128_CFB {
        return Err(bad(
            "not a storage key (restricted decryption key with AES-128-CFB)".into(),
        ));
    }
    Ok(key.key)
}

fn require_session(use_session: bool) -> Result<()> {
    if use_session {
        Ok(())
    } else {
        Err(Error::Unsupported(
            "importing with session = off: the inner wrapper's key would cross the bus in clear"
                .into(),
        ))
    }
}

/// Imports `key` under `parent` (default: the configured parent, else the storage primary)
/// in this TPM: a loadable key file. One TPM2_ReadPublic of the parent (whose Name must be
/// the one the connection knows) and one TPM2_Import, the inner wrapper's key encrypted by
/// the session.
pub fn import(key: &SoftwareKey, password: Option<&[u8]>, parent: Option<u32>) -> Result<KeyFile> {
    let password = password.filter(|p| !p.is_empty());
    let (parent, public, private) = with_link(|link| {
        let parent = parent.or(link.config().parent).unwrap_or(TPM_RH_OWNER);
        link.run(Need::Parent(parent), |tpm, target| {
            require_session(tpm.use_session)?;
            let t = target.ok_or_else(|| Error::Integrity("parent not loaded".into()))?;
            let (parent_blob, parent_name) = tpm.read_public(t.handle)?;
            if parent_name != t.name || public_name(&parent_blob)? != t.name {
                return Err(Error::Integrity(format!(
                    "the parent's public area does not match its Name {}",
                    hex(&t.name)
                )));
            }
            let parent_key = parent_public(&parent_blob)?;
            let w = wrap(key, password, &parent_key, true)?;
            let private = tpm.import(
                t.handle,
                &t.name,
                &t.auth,
                &w.encryption_key,
                &w.public,
                &w.duplicate,
                &w.in_sym_seed,
            )?;
            Ok((parent, w.public, private))
        })
    })?;
    Ok(KeyFile {
        key_type: KeyFileType::Loadable,
        empty_auth: password.is_none(),
        policy: None,
        secret: None,
        auth_policy: None,
        envelope: None,
        parent,
        public,
        private,
    })
}

/// Wraps `key` for the parent whose public key is `parent_key`, without a TPM: an importable
/// key file (no inner wrapper, as the key file format requires) naming `parent` (the
/// handle the parent has on the target, 0x40000001 for its storage primary).
pub fn wrap_offline(
    key: &SoftwareKey,
    password: Option<&[u8]>,
    parent_key: &PublicKey,
    parent: u32,
) -> Result<KeyFile> {
    let password = password.filter(|p| !p.is_empty());
    let w = wrap(key, password, parent_key, false)?;
    let mut secret = Writer::new();
    secret.tpm2b(&w.in_sym_seed);
    Ok(KeyFile {
        key_type: KeyFileType::Importable,
        empty_auth: password.is_none(),
        policy: None,
        secret: Some(secret.into_vec()),
        auth_policy: None,
        envelope: None,
        parent,
        public: w.public,
        private: w.duplicate,
    })
}

/// TPM2_Import of an importable key file under its parent: the loadable key file.
pub fn import_key_file(file: &KeyFile) -> Result<KeyFile> {
    if file.key_type != KeyFileType::Importable {
        return Err(Error::BadInput("not an importable key file".into()));
    }
    if file.policy.is_some() || file.auth_policy.is_some() {
        return Err(Error::Unsupported(
            "importable key files with a policy".into(),
        ));
    }
    let secret = file
        .secret
        .as_deref()
        .ok_or_else(|| Error::KeyFile("importable key without secret [2]".into()))?;
    let seed = tpm2b_contents(secret)
        .map_err(|_| Error::KeyFile("secret [2]: bad TPM2B_ENCRYPTED_SECRET size".into()))?;
    let private = with_link(|link| {
        link.run(Need::Parent(file.parent), |tpm, target| {
            let t = target.ok_or_else(|| Error::Integrity("parent not loaded".into()))?;
            tpm.import(
                t.handle,
                &t.name,
                &t.auth,
                &[],
                &file.public,
                &file.private,
                seed,
            )
        })
    })?;
    Ok(KeyFile {
        key_type: KeyFileType::Loadable,
        secret: None,
        private,
        ..file.clone()
    })
}

/// Where the loadable form of an importable key file is kept: STATE/imported/<SHA-256 of
/// the file's DER>.key.
pub fn cache_path(file: &KeyFile) -> Result<PathBuf> {
    let state = with_link(|link| Ok(link.config().state_dir()))?;
    let id = hex(&CRYPTO.sha256(&[&file.to_der()]));
    Ok(state.join("imported").join(format!("{id}.key")))
}

/// The loadable form of an importable key file: from the cache, or imported once (one
/// TPM2_Import) and cached (mode 0600 in a 0700 directory).
pub fn loadable(file: &KeyFile) -> Result<KeyFile> {
    let path = cache_path(file)?;
    if let Ok(data) = std::fs::read(&path) {
        if let Ok(cached) = KeyFile::from_pem_or_der(&data) {
            if cached.key_type == KeyFileType::Loadable && cached.public == file.public {
                return Ok(cached);
            }
        }
    }
    let imported = import_key_file(file)?;
    if let Some(dir) = path.parent() {
        files::create_dir(dir)?;
    }
    files::write_atomic(&path, imported.to_pem().as_bytes())?;
    Ok(imported)
}
