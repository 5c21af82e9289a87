//! PKCS#11 rows: C_Sign, C_Decrypt and C_DeriveKey through a module, logged in, driven by
//! the cryptoki crate: the tpmkey module or Debian's tpm2-pkcs11, through the same code.
//! Tokens are initialised and their keys generated through PKCS#11 as well (`token-setup`).

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tpmkey::hash::Hash;
use tpmkey::public_key::{Curve, PublicKey};

use crate::operation::{public_pkey, Inputs, Op, Output};
use crate::worker::Operation;

const TOKEN_LABEL: &str = "bench";
const SO_PIN: &str = "bench-so-pin";
pub const USER_PIN: &str = "bench-user-pin";
/// DER of the OID prime256v1 (1.2.840.10045.3.1.7), CKA_EC_PARAMS.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const TPM2_PKCS11_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStack {
    Tpmkey,
    Tpm2Pkcs11,
}

impl TokenStack {
    pub fn id(self) -> &'static str {
        match self {
            TokenStack::Tpmkey => "pkcs11",
            TokenStack::Tpm2Pkcs11 => "tpm2-pkcs11",
        }
    }

    pub fn parse(s: &str) -> Result<TokenStack, String> {
        [TokenStack::Tpmkey, TokenStack::Tpm2Pkcs11]
            .into_iter()
            .find(|t| t.id() == s)
            .ok_or_else(|| format!("unknown token stack \"{s}\""))
    }

    /// The module file; ours sits next to the bench binary in target/release.
    pub fn module(self) -> Result<PathBuf, String> {
        match self {
            TokenStack::Tpmkey => {
                crate::parts::release_dir().map(|d| d.join("libtpmkey_pkcs11.so"))
            }
            TokenStack::Tpm2Pkcs11 => Ok(TPM2_PKCS11_MODULE.into()),
        }
    }

    /// The token's store directory under the bench's work directory.
    pub fn store(self, work: &Path) -> PathBuf {
        work.join(format!("{}-store", self.id()))
    }

    /// Where `token-setup` leaves the public half of the key an operation uses.
    pub fn public_key_file(self, work: &Path, op: Op) -> PathBuf {
        work.join(format!("{}-{}.pub.pem", self.id(), op.token_label()))
    }
}

pub fn p11(what: &str) -> impl Fn(cryptoki::error::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn pin(p: &str) -> AuthPin {
    AuthPin::from(p.to_string())
}

pub fn open(module: &Path) -> Result<Pkcs11, String> {
    let pkcs11 = Pkcs11::new(module).map_err(p11("loading the module"))?;
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(p11("C_Initialize"))?;
    Ok(pkcs11)
}

/// The slot whose token has our label, or (`uninitialised`) the first empty one.
fn find_slot(pkcs11: &Pkcs11, uninitialised: bool) -> Result<Slot, String> {
    for slot in pkcs11
        .get_slots_with_token()
        .map_err(p11("C_GetSlotList"))?
    {
        let info = pkcs11.get_token_info(slot).map_err(p11("C_GetTokenInfo"))?;
        let wanted = if uninitialised {
            !info.token_initialized()
        } else {
            info.token_initialized() && info.label().trim_end() == TOKEN_LABEL
        };
        if wanted {
            return Ok(slot);
        }
    }
    Err(if uninitialised {
        "no slot with an uninitialised token".into()
    } else {
        format!("no token labelled \"{TOKEN_LABEL}\"")
    })
}

/// The steps of `token-setup`, each in a process of its own with leftover TPM objects
/// flushed in between: tpm2-pkcs11 does not flush everything at C_Finalize, and swtpm
/// without a resource manager has 3 object slots.
pub const SETUP_STEPS: [&str; 3] = ["init", "ec", "rsa"];

/// `token-setup <stack> <dir> <step>`: `init` initialises the token and sets the user PIN;
/// `ec` and `rsa` generate the P-256 or RSA-2048 key pair and write its public half as PEM.
pub fn setup(args: &[String]) -> Result<(), String> {
    let [stack, dir, step] = args else {
        return Err(format!(
            "token-setup: expected <stack> <dir> <step>, got {args:?}"
        ));
    };
    let (stack, dir) = (TokenStack::parse(stack)?, PathBuf::from(dir));
    let pkcs11 = open(&stack.module()?)?;
    if step == "init" {
        initialise(&pkcs11)?;
    } else {
        let op = match step.as_str() {
            "ec" => Op::EcdsaP256,
            "rsa" => Op::RsaSign,
            _ => return Err(format!("token-setup: unknown step \"{step}\"")),
        };
        let session = log_in(&pkcs11)?;
        let public = generate(&session, op)?;
        let pem = public_pkey(&public)?
            .public_key_to_pem()
            .map_err(|e| format!("public key PEM: {e}"))?;
        let path = stack.public_key_file(&dir, op);
        std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    pkcs11.finalize().map_err(p11("C_Finalize"))?;
    println!("ok");
    Ok(())
}

/// Initialises the first empty token as ours and sets its user PIN.
pub fn initialise(pkcs11: &Pkcs11) -> Result<(), String> {
    let slot = find_slot(pkcs11, true)?;
    pkcs11
        .init_token(slot, &pin(SO_PIN), TOKEN_LABEL)
        .map_err(p11("C_InitToken"))?;
    let slot = find_slot(pkcs11, false)?;
    let session = pkcs11.open_rw_session(slot).map_err(p11("C_OpenSession"))?;
    session
        .login(UserType::So, Some(&pin(SO_PIN)))
        .map_err(p11("C_Login(SO)"))?;
    session.init_pin(&pin(USER_PIN)).map_err(p11("C_InitPIN"))
}

/// A R/W session on our token, logged in as the user.
pub fn log_in(pkcs11: &Pkcs11) -> Result<Session, String> {
    let slot = find_slot(pkcs11, false)?;
    let session = pkcs11.open_rw_session(slot).map_err(p11("C_OpenSession"))?;
    session
        .login(UserType::User, Some(&pin(USER_PIN)))
        .map_err(p11("C_Login(user)"))?;
    Ok(session)
}

fn generate(session: &Session, op: Op) -> Result<PublicKey, String> {
    let label = Attribute::Label(op.token_label().as_bytes().to_vec());
    let id = Attribute::Id(op.token_label().as_bytes().to_vec());
    let (mechanism, mut public, mut private) = if op.is_rsa() {
        (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(2048u64.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Encrypt(true),
            ],
            vec![Attribute::Decrypt(true)],
        )
    } else {
        (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(P256_PARAMS.to_vec())],
            vec![Attribute::Derive(true)],
        )
    };
    public.extend([
        Attribute::Token(true),
        Attribute::Verify(true),
        label.clone(),
        id.clone(),
    ]);
    private.extend([
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        label,
        id,
    ]);
    let (pub_handle, _) = session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(p11("C_GenerateKeyPair"))?;
    read_public(session, pub_handle, op)
}

fn read_public(session: &Session, handle: ObjectHandle, op: Op) -> Result<PublicKey, String> {
    let types = if op.is_rsa() {
        vec![AttributeType::Modulus, AttributeType::PublicExponent]
    } else {
        vec![AttributeType::EcPoint]
    };
    let attrs = session
        .get_attributes(handle, &types)
        .map_err(p11("C_GetAttributeValue"))?;
    let (mut modulus, mut exponent, mut point) = (None, None, None);
    for a in attrs {
        match a {
            Attribute::Modulus(m) => modulus = Some(m),
            Attribute::PublicExponent(e) => exponent = Some(e),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    if let (Some(modulus), Some(e)) = (modulus, exponent) {
        let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        return Ok(PublicKey::Rsa { modulus, exponent });
    }
    // CKA_EC_POINT: a DER OCTET STRING (04 41) around 04 || x || y.
    let point = point.ok_or("the public key has no CKA_EC_POINT")?;
    let raw = match point.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        p if p.len() == 65 => p,
        _ => return Err(format!("unexpected CKA_EC_POINT of {} bytes", point.len())),
    };
    Ok(PublicKey::Ec {
        curve: Curve::P256,
        x: raw[1..33].to_vec(),
        y: raw[33..].to_vec(),
    })
}

struct LoggedIn {
    // Field order is drop order: the session closes before the library finalises.
    session: Session,
    key: ObjectHandle,
    pkcs11: Pkcs11,
}

#[allow(missing_debug_implementations)]
pub struct TokenOperation {
    module: PathBuf,
    op: Op,
    digest: Vec<u8>,
    ciphertext: Vec<u8>,
    peer_point: Vec<u8>,
    open: Option<LoggedIn>,
}

impl TokenOperation {
    pub fn new(stack: TokenStack, inputs: &Inputs) -> Result<TokenOperation, String> {
        // CKM_RSA_PKCS signs what it is given: the DigestInfo, as OpenSSH and libp11 send it.
        let digest = match inputs.op {
            Op::RsaSign => [Hash::Sha256.digest_info_prefix(), &inputs.digest].concat(),
            _ => inputs.digest.clone(),
        };
        Ok(TokenOperation {
            module: stack.module()?,
            op: inputs.op,
            digest,
            ciphertext: inputs.ciphertext.clone(),
            peer_point: inputs.peer_point(),
            open: None,
        })
    }
}

impl Operation for TokenOperation {
    /// C_Initialize, C_OpenSession, C_Login, C_FindObjects.
    fn acquire(&mut self) -> Result<(), String> {
        if self.open.is_some() {
            return Ok(());
        }
        let pkcs11 = open(&self.module)?;
        let session = log_in(&pkcs11)?;
        let key = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(self.op.token_label().as_bytes().to_vec()),
            ])
            .map_err(p11("C_FindObjects"))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no private key labelled {}", self.op.token_label()))?;
        self.open = Some(LoggedIn {
            session,
            key,
            pkcs11,
        });
        Ok(())
    }

    fn once(&mut self) -> Result<Output, String> {
        let open = self.open.as_ref().ok_or("not logged in")?;
        let (s, key) = (&open.session, open.key);
        match self.op {
            Op::EcdsaP256 => s
                .sign(&Mechanism::Ecdsa, key, &self.digest)
                .map(Output::EcdsaConcat)
                .map_err(p11("C_Sign")),
            Op::RsaSign => s
                .sign(&Mechanism::RsaPkcs, key, &self.digest)
                .map(Output::Rsa)
                .map_err(p11("C_Sign")),
            Op::RsaOaep => {
                let params = PkcsOaepParams::new(
                    MechanismType::SHA256,
                    PkcsMgfType::MGF1_SHA256,
                    PkcsOaepSource::empty(),
                );
                s.decrypt(&Mechanism::RsaPkcsOaep(params), key, &self.ciphertext)
                    .map(Output::Secret)
                    .map_err(p11("C_Decrypt"))
            }
            Op::EcdhP256 => {
                let params = Ecdh1DeriveParams::new(EcKdf::null(), &self.peer_point);
                let secret = s
                    .derive_key(
                        &Mechanism::Ecdh1Derive(params),
                        key,
                        &[
                            Attribute::Class(ObjectClass::SECRET_KEY),
                            Attribute::KeyType(KeyType::GENERIC_SECRET),
                            Attribute::Token(false),
                            Attribute::Sensitive(false),
                            Attribute::Extractable(true),
                            Attribute::ValueLen(32u64.into()),
                        ],
                    )
                    .map_err(p11("C_DeriveKey"))?;
                let value = s
                    .get_attributes(secret, &[AttributeType::Value])
                    .map_err(p11("C_GetAttributeValue"));
                s.destroy_object(secret).map_err(p11("C_DestroyObject"))?;
                match value?.into_iter().next() {
                    Some(Attribute::Value(v)) => Ok(Output::Secret(v)),
                    other => Err(format!("derived key without CKA_VALUE: {other:?}")),
                }
            }
        }
    }

    /// C_Logout, C_CloseSession, C_Finalize.
    fn release(&mut self) -> Result<(), String> {
        if let Some(open) = self.open.take() {
            let _ = open.session.logout();
            drop(open.session);
            open.pkcs11.finalize().map_err(p11("C_Finalize"))?;
        }
        Ok(())
    }
}
