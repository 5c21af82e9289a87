//! TPM 2.0 wire format: constants of Part 2 that tpmkey sends, and bounds-checked
//! big-endian marshalling for command and response buffers.

use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
pub const TPM_ST_SESSIONS: u16 = 0x8002;

pub const TPM_RH_OWNER: u32 = 0x4000_0001;
pub const TPM_RH_NULL: u32 = 0x4000_0007;
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;
pub const TPM_RS_PW: u32 = 0x4000_0009;

pub const TPM_ALG_SHA1: u16 = 0x0004;
pub const TPM_ALG_AES: u16 = 0x0006;
pub const TPM_ALG_KEYEDHASH: u16 = 0x0008;
pub const TPM_ALG_SHA256: u16 = 0x000B;
pub const TPM_ALG_SHA384: u16 = 0x000C;
pub const TPM_ALG_SHA512: u16 = 0x000D;
pub const TPM_ALG_NULL: u16 = 0x0010;
pub const TPM_ALG_RSASSA: u16 = 0x0014;
pub const TPM_ALG_RSAPSS: u16 = 0x0016;
pub const TPM_ALG_OAEP: u16 = 0x0017;
pub const TPM_ALG_ECDSA: u16 = 0x0018;
pub const TPM_ALG_CFB: u16 = 0x0043;

pub const TPM_ECC_NIST_P256: u16 = 0x0003;
pub const TPM_ECC_NIST_P384: u16 = 0x0004;

pub const TPM_SE_HMAC: u8 = 0x00;
pub const TPM_SE_POLICY: u8 = 0x01;

pub const TPM_CAP_HANDLES: u32 = 0x0000_0001;
pub const TPM_CAP_TPM_PROPERTIES: u32 = 0x0000_0006;

/// Command codes tpmkey sends, with the names its errors print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CommandCode {
    EvictControl = 0x120,
    ChangeAuth = 0x150,
    CreatePrimary = 0x131,
    DictionaryAttackParameters = 0x13A,
    Create = 0x153,
    Load = 0x157,
    Unseal = 0x15E,
    ContextLoad = 0x161,
    ContextSave = 0x162,
    EcdhZGen = 0x154,
    FlushContext = 0x165,
    RsaDecrypt = 0x159,
    Sign = 0x15D,
    Hash = 0x17D,
    HashSequenceStart = 0x186,
    SequenceUpdate = 0x15C,
    SequenceComplete = 0x13E,
    StartAuthSession = 0x176,
    GetCapability = 0x17A,
    GetRandom = 0x17B,
    ReadPublic = 0x173,
    StirRandom = 0x146,
    PcrRead = 0x17E,
    LoadExternal = 0x167,
    VerifySignature = 0x177,
    PolicySecret = 0x151,
    PolicyAuthorize = 0x16A,
    PolicyAuthValue = 0x16B,
    PolicyCommandCode = 0x16C,
    PolicyCounterTimer = 0x16D,
    PolicyLocality = 0x16F,
    PolicyOr = 0x171,
    PolicyPcr = 0x17F,
    PolicyRestart = 0x180,
    PolicyGetDigest = 0x189,
    ReadClock = 0x181,
    Import = 0x156,
    NvReadPublic = 0x169,
    NvRead = 0x14E,
    Certify = 0x148,
    Quote = 0x158,
    ActivateCredential = 0x147,
    CertifyCreation = 0x14A,
    NvDefineSpace = 0x12A,
    NvUndefineSpace = 0x122,
    NvWrite = 0x137,
    PolicyNvWritten = 0x18F,
}

impl CommandCode {
    pub fn name(self) -> &'static str {
        match self {
            CommandCode::EvictControl => "EvictControl",
            CommandCode::ChangeAuth => "ObjectChangeAuth",
            CommandCode::CreatePrimary => "CreatePrimary",
            CommandCode::DictionaryAttackParameters => "DictionaryAttackParameters",
            CommandCode::Create => "Create",
            CommandCode::Load => "Load",
            CommandCode::Unseal => "Unseal",
            CommandCode::ContextLoad => "ContextLoad",
            CommandCode::ContextSave => "ContextSave",
            CommandCode::EcdhZGen => "ECDH_ZGen",
            CommandCode::FlushContext => "FlushContext",
            CommandCode::RsaDecrypt => "RSA_Decrypt",
            CommandCode::Sign => "Sign",
            CommandCode::Hash => "Hash",
            CommandCode::HashSequenceStart => "HashSequenceStart",
            CommandCode::SequenceUpdate => "SequenceUpdate",
            CommandCode::SequenceComplete => "SequenceComplete",
            CommandCode::StartAuthSession => "StartAuthSession",
            CommandCode::GetCapability => "GetCapability",
            CommandCode::GetRandom => "GetRandom",
            CommandCode::ReadPublic => "ReadPublic",
            CommandCode::StirRandom => "StirRandom",
            CommandCode::PcrRead => "PCR_Read",
            CommandCode::LoadExternal => "LoadExternal",
            CommandCode::VerifySignature => "VerifySignature",
            CommandCode::PolicySecret => "PolicySecret",
            CommandCode::PolicyAuthorize => "PolicyAuthorize",
            CommandCode::PolicyAuthValue => "PolicyAuthValue",
            CommandCode::PolicyCommandCode => "PolicyCommandCode",
            CommandCode::PolicyCounterTimer => "PolicyCounterTimer",
            CommandCode::PolicyLocality => "PolicyLocality",
            CommandCode::PolicyOr => "PolicyOR",
            CommandCode::PolicyPcr => "PolicyPCR",
            CommandCode::PolicyRestart => "PolicyRestart",
            CommandCode::PolicyGetDigest => "PolicyGetDigest",
            CommandCode::ReadClock => "ReadClock",
            CommandCode::Import => "Import",
            CommandCode::NvReadPublic => "NV_ReadPublic",
            CommandCode::NvRead => "NV_Read",
            CommandCode::Certify => "Certify",
            CommandCode::Quote => "Quote",
            CommandCode::ActivateCredential => "ActivateCredential",
            CommandCode::CertifyCreation => "CertifyCreation",
            CommandCode::NvDefineSpace => "NV_DefineSpace",
            CommandCode::NvUndefineSpace => "NV_UndefineSpace",
            CommandCode::NvWrite => "NV_Write",
            CommandCode::PolicyNvWritten => "PolicyNvWritten",
        }
    }

    /// The policy commands a statement's parameters can be sent with as they are.
    pub fn policy_statement(code: u32) -> Option<CommandCode> {
        Some(match code {
            0x16B => CommandCode::PolicyAuthValue,
            0x16C => CommandCode::PolicyCommandCode,
            0x16D => CommandCode::PolicyCounterTimer,
            0x16F => CommandCode::PolicyLocality,
            0x171 => CommandCode::PolicyOr,
            0x17F => CommandCode::PolicyPcr,
            _ => return None,
        })
    }
}

/// A growing big-endian buffer.
/// Marshals big-endian TPM structures. Its buffer may hold secrets (sensitive areas,
/// authValues, plaintext), so it never leaves a copy behind: growing zeroizes the old
/// allocation, and dropping zeroizes the buffer.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Zeroizing<Vec<u8>>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }
    /// Makes room for `n` more bytes without a reallocation that would leave the old
    /// bytes in freed memory.
    fn reserve(&mut self, n: usize) {
        let needed = self.buf.len().saturating_add(n);
        if needed <= self.buf.capacity() {
            return;
        }
        let mut grown = Zeroizing::new(Vec::with_capacity(
            needed.max(2 * self.buf.capacity()).max(64),
        ));
        grown.extend_from_slice(&self.buf);
        self.buf = grown;
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.bytes(&[v])
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.reserve(v.len());
        self.buf.extend_from_slice(v);
        self
    }
    /// A TPM2B: 16-bit size, then the bytes. Callers check sizes against the TPM's limits;
    /// an oversized value is truncated in the size field and the TPM rejects it.
    pub fn tpm2b(&mut self, v: &[u8]) -> &mut Self {
        self.u16(u16::try_from(v.len()).unwrap_or(u16::MAX))
            .bytes(v)
    }
    /// The bytes, for data that is not secret.
    pub fn into_vec(mut self) -> Vec<u8> {
        std::mem::take(&mut *self.buf)
    }
    /// The bytes, zeroized when dropped.
    pub fn into_secret(self) -> Zeroizing<Vec<u8>> {
        self.buf
    }
}

/// A bounds-checked cursor over a TPM response; running off the end is `Error::Integrity`.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| {
                Error::Integrity(format!(
                    "malformed TPM response: needs {n} bytes at offset {}",
                    self.pos
                ))
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let hi = self.u32()?;
        let lo = self.u32()?;
        Ok((u64::from(hi) << 32) | u64::from(lo))
    }
    pub fn tpm2b(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    /// A TPM2B with its size prefix, as stored in key files.
    pub fn tpm2b_raw(&mut self) -> Result<&'a [u8]> {
        let start = self.pos;
        self.tpm2b()?;
        Ok(&self.data[start..self.pos])
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.data[self.pos..];
        self.pos = self.data.len();
        s
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// Ok when every byte was read: a TPM response with bytes after its structure is
    /// malformed, and is not used.
    pub fn end(&self) -> Result<()> {
        match self.data.len().saturating_sub(self.pos) {
            0 => Ok(()),
            n => Err(Error::Integrity(format!(
                "malformed TPM response: {n} bytes after its end"
            ))),
        }
    }
}

/// Strips the size prefix of a TPM2B held whole, checking that the size matches.
pub fn tpm2b_contents(raw: &[u8]) -> Result<&[u8]> {
    let mut r = Reader::new(raw);
    let inner = r.tpm2b()?;
    if !r.is_empty() {
        return Err(Error::Integrity("TPM2B has trailing bytes".into()));
    }
    Ok(inner)
}

pub fn with_size_prefix(v: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.tpm2b(v);
    w.into_vec()
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    #[test]
    fn writer_grows_without_losing_bytes_and_hands_out_zeroizing_buffers() {
        let mut w = Writer::new();
        for i in 0..1000u32 {
            w.u32(i);
        }
        let secret: Zeroizing<Vec<u8>> = w.into_secret();
        assert_eq!(secret.len(), 4000);
        assert_eq!(&secret[3996..], &999u32.to_be_bytes());
    }
}
