//! TPM 2.0 response codes (Part 2, 6.6) and TSS layer codes, decoded into words with the
//! likely cause, so that an error says "wrong password" rather than "0x98e".

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub u32);

pub const TPM_RC_SUCCESS: u32 = 0;
pub const TPM_RC_OBJECT_MEMORY: u32 = 0x902;
pub const TPM_RC_SESSION_MEMORY: u32 = 0x903;
pub const TPM_RC_RETRY: u32 = 0x922;
pub const TPM_RC_YIELDED: u32 = 0x908;
pub const TPM_RC_TESTING: u32 = 0x90A;
pub const TPM_RC_LOCKOUT: u32 = 0x921;
pub const TPM_RC_INITIALIZE: u32 = 0x100;
pub const TPM_RC_REFERENCE_H0: u32 = 0x910;
/// The last of the REFERENCE codes (H0..H6, S0..S6): a handle or session that is not loaded.
pub const TPM_RC_REFERENCE_S6: u32 = 0x91E;
pub const TPM_RC_CONTEXT_GAP: u32 = 0x904;
pub const TPM_RC_BAD_CONTEXT: u32 = 0x150;
pub const TPM_RC_VALUE: u32 = 0x084;
pub const TPM_RC_AUTH_FAIL: u32 = 0x08E;
pub const TPM_RC_BAD_AUTH: u32 = 0x0A2;

const FMT1: u32 = 0x080;
const VER1: u32 = 0x100;
const WARN: u32 = 0x900;

/// (code, name, likely cause) for format-one errors, without the handle/parameter/session bits.
const FMT1_CODES: &[(u32, &str, &str)] = &[
    (0x01, "ASYMMETRIC", "asymmetric algorithm not supported or not correct"),
    (0x02, "ATTRIBUTES", "inconsistent attributes"),
    (0x03, "HASH", "hash algorithm not supported or not appropriate"),
    (0x04, "VALUE", "value is out of range or is not correct for the context"),
    (0x05, "HIERARCHY", "hierarchy is not enabled or is not correct for the use"),
    (0x07, "KEY_SIZE", "key size is not supported by this TPM"),
    (0x08, "MGF", "mask generation function not supported"),
    (0x09, "MODE", "mode of operation not supported"),
    (0x0A, "TYPE", "the type of the value is not appropriate for the use"),
    (0x0B, "HANDLE", "the handle is not correct for the use"),
    (0x0C, "KDF", "unsupported key derivation function"),
    (0x0D, "RANGE", "value was out of allowed range"),
    (0x0E, "AUTH_FAIL", "wrong password or PIN (counts toward dictionary-attack lockout)"),
    (0x0F, "NONCE", "invalid nonce size or nonce value mismatch"),
    (0x10, "PP", "authorisation requires assertion of physical presence"),
    (0x12, "SCHEME", "unsupported or incompatible scheme for this key"),
    (0x15, "SIZE", "structure is the wrong size"),
    (0x16, "SYMMETRIC", "unsupported symmetric algorithm or key size"),
    (0x17, "TAG", "incorrect structure tag"),
    (0x18, "SELECTOR", "union selector is incorrect"),
    (0x1A, "INSUFFICIENT", "the TPM was unable to unmarshal a value: input too short"),
    (0x1B, "SIGNATURE", "the signature is not valid"),
    (0x1C, "KEY", "key fields are not compatible with the selected use"),
    (0x1D, "POLICY_FAIL", "a policy check failed"),
    (0x1F, "INTEGRITY", "key blob does not belong to this TPM or is corrupt (integrity check failed)"),
    (0x20, "TICKET", "invalid ticket"),
    (0x21, "RESERVED_BITS", "reserved bits not set to zero as required"),
    (0x22, "BAD_AUTH", "wrong password or PIN, or a command altered on the way to the TPM (authorisation HMAC failed)"),
    (0x23, "EXPIRED", "the policy has expired"),
    (0x24, "POLICY_CC", "the command code in the policy is not the command code of the command"),
    (0x25, "BINDING", "public and sensitive portions of an object are not cryptographically bound"),
    (0x26, "CURVE", "curve not supported by this TPM"),
    (0x27, "ECC_POINT", "point is not on the required curve"),
];

const VER1_CODES: &[(u32, &str, &str)] = &[
    (
        0x00,
        "INITIALIZE",
        "TPM not initialised (TPM2_Startup not sent)",
    ),
    (0x01, "FAILURE", "the TPM is in failure mode"),
    (0x03, "SEQUENCE", "improper use of a sequence handle"),
    (0x0B, "PRIVATE", "not currently used"),
    (0x19, "HMAC", "not currently used"),
    (0x20, "DISABLED", "the command is disabled"),
    (
        0x21,
        "EXCLUSIVE",
        "command failed because the audit sequence required exclusivity",
    ),
    (
        0x24,
        "AUTH_TYPE",
        "authorisation handle is not correct for the command",
    ),
    (
        0x25,
        "AUTH_MISSING",
        "command requires an authorisation session",
    ),
    (
        0x26,
        "POLICY",
        "policy failure in math operation or an invalid authPolicy value",
    ),
    (0x27, "PCR", "PCR check fail"),
    (0x28, "PCR_CHANGED", "PCR have changed since checked"),
    (0x2D, "UPGRADE", "the TPM is in field upgrade mode"),
    (
        0x2E,
        "TOO_MANY_CONTEXTS",
        "context ID counter is at maximum",
    ),
    (
        0x2F,
        "AUTH_UNAVAILABLE",
        "authValue or authPolicy is not available for the selected entity",
    ),
    (0x30, "REBOOT", "a _TPM_Init and Startup(CLEAR) is required"),
    (
        0x31,
        "UNBALANCED",
        "the protection algorithms (hash and symmetric) are not reasonably balanced",
    ),
    (
        0x42,
        "COMMAND_SIZE",
        "command size value is inconsistent with the contents",
    ),
    (
        0x43,
        "COMMAND_CODE",
        "command code not supported by this TPM",
    ),
    (
        0x44,
        "AUTHSIZE",
        "the authorisation size is out of range or wrong for the command",
    ),
    (
        0x45,
        "AUTH_CONTEXT",
        "use of an authorisation session with a context command",
    ),
    (0x46, "NV_RANGE", "NV offset+size is out of range"),
    (
        0x47,
        "NV_SIZE",
        "requested allocation size is larger than allowed",
    ),
    (0x48, "NV_LOCKED", "NV access locked"),
    (
        0x49,
        "NV_AUTHORIZATION",
        "NV access authorisation fails in command actions",
    ),
    (
        0x4A,
        "NV_UNINITIALIZED",
        "an NV index is used before being initialised",
    ),
    (0x4B, "NV_SPACE", "insufficient space for NV allocation"),
    (
        0x4C,
        "NV_DEFINED",
        "the persistent handle or NV index is already in use",
    ),
    (
        0x50,
        "BAD_CONTEXT",
        "context in TPM2_ContextLoad is not valid (TPM restarted since it was saved?)",
    ),
    (
        0x51,
        "CPHASH",
        "cpHash value already set or not correct for use",
    ),
    (0x52, "PARENT", "handle for parent is not a valid parent"),
    (0x53, "NEEDS_TEST", "some function needs testing"),
    (
        0x54,
        "NO_RESULT",
        "the TPM cannot perform a function due to a previous failure",
    ),
    (
        0x55,
        "SENSITIVE",
        "the sensitive area did not unmarshal correctly",
    ),
];

const WARN_CODES: &[(u32, &str, &str)] = &[
    (0x01, "CONTEXT_GAP", "gap for context ID is too large"),
    (
        0x02,
        "OBJECT_MEMORY",
        "out of memory for object contexts: the TPM's object slots are full",
    ),
    (
        0x03,
        "SESSION_MEMORY",
        "out of memory for session contexts: the TPM's session slots are full",
    ),
    (0x04, "MEMORY", "out of shared object/session memory"),
    (0x05, "SESSION_HANDLES", "out of session handles"),
    (0x06, "OBJECT_HANDLES", "out of object handles"),
    (0x07, "LOCALITY", "bad locality"),
    (
        0x08,
        "YIELDED",
        "the TPM has suspended operation on the command",
    ),
    (0x09, "CANCELED", "the command was cancelled"),
    (0x0A, "TESTING", "the TPM is performing self-tests"),
    (
        0x20,
        "NV_RATE",
        "the TPM is rate-limiting accesses to prevent wearout of NV",
    ),
    (
        0x21,
        "LOCKOUT",
        "the TPM is in dictionary-attack lockout: too many wrong passwords or PINs",
    ),
    (
        0x22,
        "RETRY",
        "the TPM was not able to start the command; retry",
    ),
    (
        0x23,
        "NV_UNAVAILABLE",
        "the command may require writing of NV and NV is not currently accessible",
    ),
];

const TSS_BASE_CODES: &[(u32, &str)] = &[
    (1, "general failure"),
    (2, "not implemented"),
    (3, "bad context"),
    (4, "ABI mismatch"),
    (5, "bad reference"),
    (6, "insufficient buffer"),
    (7, "bad sequence"),
    (8, "no connection"),
    (9, "try again"),
    (10, "I/O error (TPM or resource manager not reachable)"),
    (11, "bad value"),
    (12, "not permitted"),
    (16, "bad size"),
    (17, "malformed response"),
    (20, "incompatible TCTI"),
    (21, "not supported"),
    (22, "bad TCTI structure"),
    (23, "out of memory"),
];

fn lookup(
    table: &'static [(u32, &'static str, &'static str)],
    code: u32,
) -> Option<(&'static str, &'static str)> {
    table
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, n, w)| (*n, *w))
}

impl ResponseCode {
    /// The error without the handle/parameter/session number of format-one codes.
    pub fn base(self) -> u32 {
        let rc = self.0;
        if rc >> 16 != 0 {
            return rc;
        }
        if rc & FMT1 != 0 {
            FMT1 | (rc & 0x3F)
        } else {
            rc & 0xFFF
        }
    }

    /// For a format-one error about a handle (not a parameter or session), which handle
    /// of the command it names (1 = the first).
    pub fn handle_number(self) -> Option<u32> {
        let rc = self.0;
        let about_handle = rc >> 16 == 0 && rc & FMT1 != 0 && rc & 0x040 == 0 && rc & 0x800 == 0;
        let n = (rc >> 8) & 0x7;
        (about_handle && n != 0).then_some(n)
    }

    pub fn is_bad_auth(self) -> bool {
        matches!(self.base(), TPM_RC_AUTH_FAIL | TPM_RC_BAD_AUTH)
    }

    /// The TPM has no room now (object or session memory, context gap): try again after
    /// something was flushed.
    pub fn is_tpm_full(self) -> bool {
        matches!(
            self.base(),
            TPM_RC_OBJECT_MEMORY | TPM_RC_SESSION_MEMORY | TPM_RC_CONTEXT_GAP
        )
    }

    pub fn is_lockout(self) -> bool {
        self.base() == TPM_RC_LOCKOUT
    }

    /// TPM layer code (not TSS, not vendor).
    fn is_tpm(self) -> bool {
        self.0 >> 16 == 0 && self.0 & 0x400 == 0
    }

    /// (name, meaning) of a TPM code.
    pub fn describe(self) -> (String, String) {
        let rc = self.0;
        let layer = rc >> 16;
        if layer != 0 {
            let name = match layer {
                6 => "FEATURE",
                7 => "ESAPI",
                8 => "SYS",
                9 => "MU",
                10 => "TCTI",
                11 => "RESMGR",
                12 => "RESMGR_TPM",
                _ => "TSS",
            };
            if layer == 11 || layer == 12 {
                let inner = ResponseCode(rc & 0xFFFF);
                let (n, w) = inner.describe();
                return (
                    format!("{name}:{n}"),
                    format!("{w} (from the resource manager)"),
                );
            }
            let base = rc & 0xFFFF;
            let what = TSS_BASE_CODES
                .iter()
                .find(|(c, _)| *c == base)
                .map_or("unknown TSS error", |(_, w)| *w);
            return (format!("TSS2_{name}_RC_{base}"), what.to_string());
        }
        if rc & 0x400 != 0 {
            return ("VENDOR".into(), "vendor-specific error".into());
        }
        if rc & FMT1 != 0 {
            let code = rc & 0x3F;
            let n = (rc >> 8) & 0xF;
            let position = if rc & 0x40 != 0 {
                format!(" (parameter {n})")
            } else if rc & 0x800 != 0 {
                format!(" (session {})", n & 0x7)
            } else if n != 0 {
                format!(" (handle {n})")
            } else {
                String::new()
            };
            let (name, words) =
                lookup(FMT1_CODES, code).unwrap_or(("UNKNOWN", "unknown format-one error"));
            return (format!("TPM_RC_{name}{position}"), words.to_string());
        }
        if rc & VER1 != 0 {
            let table = if rc & WARN == WARN {
                WARN_CODES
            } else {
                VER1_CODES
            };
            let code = rc & 0x7F;
            if rc & WARN == WARN && (0x10..=0x1E).contains(&code) {
                let kind = if code < 0x18 { "H" } else { "S" };
                let idx = code & 0x7;
                return (
                    format!("TPM_RC_REFERENCE_{kind}{idx}"),
                    "the handle refers to an object or session that is not loaded".into(),
                );
            }
            let (name, words) = lookup(table, code).unwrap_or(("UNKNOWN", "unknown TPM error"));
            return (format!("TPM_RC_{name}"), words.to_string());
        }
        ("TPM1.2_RC".into(), "TPM 1.2 style response code".into())
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, words) = self.describe();
        if self.is_tpm() || self.0 >> 16 != 0 {
            write!(f, "{name} (0x{:x}): {words}", self.0)
        } else {
            write!(f, "{name} (0x{:x})", self.0)
        }
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseCode(0x{:x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_common_codes() {
        let s = ResponseCode(0x98e).to_string();
        assert!(s.contains("AUTH_FAIL") && s.contains("session 1"), "{s}");
        assert!(ResponseCode(0x98e).is_bad_auth());
        assert!(ResponseCode(0x9a2).is_bad_auth());
        let s = ResponseCode(0x1df).to_string();
        assert!(
            s.contains("INTEGRITY") && s.contains("does not belong to this TPM"),
            "{s}"
        );
        assert!(ResponseCode(0x902).to_string().contains("OBJECT_MEMORY"));
        assert!(ResponseCode(0x921).is_lockout());
        assert!(ResponseCode(0x18b)
            .to_string()
            .contains("HANDLE (handle 1)"));
        assert!(ResponseCode(0x2c4)
            .to_string()
            .contains("VALUE (parameter 2)"));
        assert!(ResponseCode(0xa000a).to_string().contains("I/O error"));
        assert!(ResponseCode(0x910).to_string().contains("REFERENCE_H0"));
        assert!(ResponseCode(0x0b0902).to_string().contains("OBJECT_MEMORY"));
    }
}
