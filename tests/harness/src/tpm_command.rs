//! What an observer of the TPM bus can read from a command without any key: its code and
//! name (TPM 2.0 Part 2, TPM_CC), its handles, where its parameters start, and the type of
//! key it works with when that shows in the clear part of the parameters.
//!
//! Every stack's commands cross the wire tap (tpm2-tss, tpm2-abrmd, tpm2-tools), so the
//! table is the specification's, not the subset tpmkey sends (`tpmkey::wire::CommandCode`).

const TPM_ST_SESSIONS: u16 = 0x8002;

/// (code, name, number of handles in the handle area) for the commands the TPM stacks
/// under test send.
const COMMANDS: &[(u32, &str, usize)] = &[
    (0x120, "EvictControl", 2),
    (0x121, "HierarchyControl", 1),
    (0x122, "NV_UndefineSpace", 2),
    (0x126, "Clear", 1),
    (0x129, "HierarchyChangeAuth", 1),
    (0x12A, "NV_DefineSpace", 1),
    (0x131, "CreatePrimary", 1),
    (0x137, "NV_Write", 2),
    (0x139, "DictionaryAttackLockReset", 1),
    (0x13A, "DictionaryAttackParameters", 1),
    (0x13E, "SequenceComplete", 1),
    (0x143, "SelfTest", 0),
    (0x144, "Startup", 0),
    (0x146, "StirRandom", 0),
    (0x147, "ActivateCredential", 2),
    (0x148, "Certify", 2),
    (0x149, "PolicyNV", 3),
    (0x14A, "CertifyCreation", 2),
    (0x14E, "NV_Read", 2),
    (0x150, "ObjectChangeAuth", 2),
    (0x151, "PolicySecret", 2),
    (0x153, "Create", 1),
    (0x154, "ECDH_ZGen", 1),
    (0x155, "HMAC", 1),
    (0x156, "Import", 2),
    (0x157, "Load", 1),
    (0x158, "Quote", 1),
    (0x159, "RSA_Decrypt", 1),
    (0x15C, "SequenceUpdate", 1),
    (0x15D, "Sign", 1),
    (0x15E, "Unseal", 1),
    (0x160, "PolicySigned", 2),
    (0x161, "ContextLoad", 0),
    (0x162, "ContextSave", 1),
    (0x163, "ECDH_KeyGen", 1),
    (0x165, "FlushContext", 0),
    (0x167, "LoadExternal", 0),
    (0x168, "MakeCredential", 1),
    (0x169, "NV_ReadPublic", 1),
    (0x16A, "PolicyAuthorize", 1),
    (0x16B, "PolicyAuthValue", 1),
    (0x16C, "PolicyCommandCode", 1),
    (0x171, "PolicyOR", 1),
    (0x173, "ReadPublic", 1),
    (0x174, "RSA_Encrypt", 1),
    (0x176, "StartAuthSession", 2),
    (0x177, "VerifySignature", 1),
    (0x178, "ECC_Parameters", 0),
    (0x17A, "GetCapability", 0),
    (0x17B, "GetRandom", 0),
    (0x17C, "GetTestResult", 0),
    (0x17D, "Hash", 0),
    (0x17E, "PCR_Read", 0),
    (0x17F, "PolicyPCR", 1),
    (0x180, "PolicyRestart", 1),
    (0x181, "ReadClock", 0),
    (0x182, "PCR_Extend", 1),
    (0x186, "HashSequenceStart", 0),
    (0x189, "PolicyGetDigest", 1),
    (0x18A, "TestParms", 0),
    (0x18C, "PolicyPassword", 1),
    (0x191, "CreateLoaded", 1),
    (0x192, "PolicyAuthorizeNV", 3),
    (0x193, "EncryptDecrypt2", 1),
];

/// The command code of a command buffer (0 if it is shorter than a header).
pub fn command_code(command: &[u8]) -> u32 {
    command
        .get(6..10)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// "Sign", "RSA_Decrypt"; `None` for a code outside the table.
pub fn command_name(code: u32) -> Option<&'static str> {
    COMMANDS.iter().find(|c| c.0 == code).map(|c| c.1)
}

/// The code of a command named as in Part 3 without the `TPM2_` prefix.
pub fn command_by_name(name: &str) -> Option<u32> {
    COMMANDS.iter().find(|c| c.1 == name).map(|c| c.0)
}

/// Handles in the command's handle area (0 for a code outside the table).
pub fn handle_count(code: u32) -> usize {
    COMMANDS.iter().find(|c| c.0 == code).map_or(0, |c| c.2)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Where the authorisation area starts (after header and handles), if the command has one.
pub fn auth_area_offset(command: &[u8]) -> Option<usize> {
    (u16_at(command, 0)? == TPM_ST_SESSIONS).then(|| 10 + 4 * handle_count(command_code(command)))
}

/// Where the parameter area starts: after header, handles and authorisation area.
pub fn parameters_offset(command: &[u8]) -> Option<usize> {
    let after_handles = 10 + 4 * handle_count(command_code(command));
    match auth_area_offset(command) {
        None => Some(after_handles),
        Some(at) => {
            let auth_size = usize::try_from(u32_at(command, at)?).ok()?;
            at.checked_add(4)?.checked_add(auth_size)
        }
    }
}

/// The asymmetric work a command does, as far as its service time depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa,
    Ecc,
    /// StartAuthSession without a salt: no asymmetric operation at all.
    Unsalted,
}

impl KeyKind {
    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "rsa" => Some(KeyKind::Rsa),
            "ecc" => Some(KeyKind::Ecc),
            "unsalted" => Some(KeyKind::Unsalted),
            _ => None,
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            KeyKind::Rsa => "rsa",
            KeyKind::Ecc => "ecc",
            KeyKind::Unsalted => "unsalted",
        }
    }
}

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_ECC: u16 = 0x0023;

fn kind_of_type(alg: u16) -> Option<KeyKind> {
    match alg {
        TPM_ALG_RSA => Some(KeyKind::Rsa),
        TPM_ALG_ECC => Some(KeyKind::Ecc),
        _ => None,
    }
}

/// RSASSA, RSAPSS, RSAES, OAEP: RSA; ECDSA, ECDAA, SM2, ECSCHNORR: ECC; NULL: unknown.
fn kind_of_scheme(alg: u16) -> Option<KeyKind> {
    match alg {
        0x0014..=0x0017 => Some(KeyKind::Rsa),
        0x0018 | 0x001A | 0x001B | 0x001C => Some(KeyKind::Ecc),
        _ => None,
    }
}

/// Skips one TPM2B at `at`; the offset after it.
fn skip_tpm2b(b: &[u8], at: usize) -> Option<usize> {
    at.checked_add(2)?.checked_add(usize::from(u16_at(b, at)?))
}

/// The key type a command works with, read from the parameters' clear parts (sizes,
/// types and scheme selectors stay in clear under parameter encryption, which covers only
/// the first parameter's buffer):
///
/// * Create, CreatePrimary, CreateLoaded, Load: the `type` of the public area;
/// * Sign, Quote, Certify: the signing scheme (`None` for the NULL scheme, which leaves
///   it to the key);
/// * RSA_Decrypt: RSA; ECDH_ZGen, ECDH_KeyGen: ECC;
/// * StartAuthSession: the salt's size (none: unsalted; 256 bytes or more: an RSA-2048
///   salting key's OAEP block; otherwise an ECC point).
pub fn key_kind(command: &[u8]) -> Option<KeyKind> {
    let params = parameters_offset(command)?;
    match command_name(command_code(command))? {
        "RSA_Decrypt" => Some(KeyKind::Rsa),
        "ECDH_ZGen" | "ECDH_KeyGen" => Some(KeyKind::Ecc),
        // inSensitive (or inPrivate), then the public area's size and type.
        "Create" | "CreatePrimary" | "CreateLoaded" | "Load" => {
            let public = skip_tpm2b(command, params)?;
            kind_of_type(u16_at(command, public.checked_add(2)?)?)
        }
        // digest or qualifyingData, then the scheme.
        "Sign" | "Quote" | "Certify" => {
            kind_of_scheme(u16_at(command, skip_tpm2b(command, params)?)?)
        }
        // nonceCaller, then encryptedSalt.
        "StartAuthSession" => {
            let salt = skip_tpm2b(command, params)?;
            Some(match u16_at(command, salt)? {
                0 => KeyKind::Unsalted,
                n if n >= 256 => KeyKind::Rsa,
                _ => KeyKind::Ecc,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command: tag, size, code, handles, optional password auth area, parameters.
    fn command(code: u32, handles: &[u32], sessions: bool, params: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for h in handles {
            body.extend_from_slice(&h.to_be_bytes());
        }
        if sessions {
            // TPM_RS_PW, empty nonce, attributes, empty hmac.
            let auth = [0x40, 0, 0, 9, 0, 0, 1, 0, 0];
            body.extend_from_slice(&(auth.len() as u32).to_be_bytes());
            body.extend_from_slice(&auth);
        }
        body.extend_from_slice(params);
        let tag: u16 = if sessions { 0x8002 } else { 0x8001 };
        let mut c = tag.to_be_bytes().to_vec();
        c.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
        c.extend_from_slice(&code.to_be_bytes());
        c.extend_from_slice(&body);
        c
    }

    #[test]
    fn names_and_codes_round_trip() {
        for (code, name, _) in COMMANDS {
            assert_eq!(command_by_name(name), Some(*code));
            assert_eq!(command_name(*code), Some(*name));
        }
        assert_eq!(command_by_name("PolicyPCR"), Some(0x17F));
        assert_eq!(command_by_name("EvictControl"), Some(0x120));
        assert_eq!(command_name(0x1FF), None);
    }

    #[test]
    fn sign_kind_comes_from_the_scheme() {
        let mut params = vec![0, 32];
        params.extend_from_slice(&[0xAA; 32]);
        for (scheme, kind) in [
            (0x0018u16, Some(KeyKind::Ecc)),
            (0x0014, Some(KeyKind::Rsa)),
            (0x0016, Some(KeyKind::Rsa)),
            (0x0010, None),
        ] {
            let mut p = params.clone();
            p.extend_from_slice(&scheme.to_be_bytes());
            p.extend_from_slice(&[0, 0x0B]);
            let c = command(0x15D, &[0x8000_0001], true, &p);
            assert_eq!(key_kind(&c), kind, "scheme {scheme:#06x}");
        }
    }

    #[test]
    fn create_primary_kind_comes_from_the_public_type() {
        for (alg, kind) in [(0x0023u16, KeyKind::Ecc), (0x0001, KeyKind::Rsa)] {
            // inSensitive: size 4, userAuth empty, data empty; inPublic: size, type, ...
            let mut p = vec![0, 4, 0, 0, 0, 0, 0, 10];
            p.extend_from_slice(&alg.to_be_bytes());
            p.extend_from_slice(&[0; 8]);
            let c = command(0x131, &[0x4000_0001], true, &p);
            assert_eq!(key_kind(&c), Some(kind));
        }
    }

    #[test]
    fn session_kind_comes_from_the_salt_size() {
        for (salt, kind) in [
            (0usize, KeyKind::Unsalted),
            (68, KeyKind::Ecc),
            (256, KeyKind::Rsa),
        ] {
            let mut p = vec![0, 16];
            p.extend_from_slice(&[1; 16]);
            p.extend_from_slice(&(salt as u16).to_be_bytes());
            p.extend_from_slice(&vec![2; salt]);
            p.extend_from_slice(&[0, 0, 0x10, 0, 0x0B]);
            let c = command(0x176, &[0x8000_0000, 0x4000_0007], false, &p);
            assert_eq!(key_kind(&c), Some(kind));
        }
    }

    #[test]
    fn truncated_commands_have_no_kind() {
        let c = command(0x15D, &[0x8000_0001], true, &[0, 32, 1]);
        assert_eq!(key_kind(&c), None);
        assert_eq!(key_kind(&c[..8]), None);
        assert_eq!(command_code(&c[..8]), 0);
    }
}
