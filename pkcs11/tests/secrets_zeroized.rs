//! Secrets handed to the module leave no copy behind (issue 9, finding 7): after a
//! C_CreateObject whose template carries a key password (CKA_TPMKEY_KEY_AUTH), the
//! process's writable memory holds the password nowhere once the caller has wiped its own
//! buffer: the module's template copies zeroize when dropped.
//!
//! The check runs in a child process (this binary again, see `common::child`) that scans
//! its own anonymous writable mappings through /proc/self/mem for the password, kept in the
//! scanner only masked so that the search itself makes no copy. The password is 64 bytes
//! and the search looks for its second half: a freed heap chunk keeps its bytes except the
//! allocator's list pointers at its start.

#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::io::{Read, Seek, SeekFrom};

use common::*;
use cryptoki_sys::*;

const CKA_TPMKEY_KEY_FILE: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x5450_4B01;
const CKA_TPMKEY_KEY_AUTH: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x5450_4B03;
const MASK: u8 = 0x5A;

/// How often `masked` (XOR MASK) occurs in the process's anonymous writable mappings.
/// `maps` and `buf` are allocated before the secret is handed in, so that the scan
/// allocates nothing that could reuse (and overwrite) a freed copy.
fn occurrences(masked: &[u8], maps: &mut String, buf: &mut [u8]) -> usize {
    maps.clear();
    std::fs::File::open("/proc/self/maps")
        .unwrap()
        .read_to_string(maps)
        .unwrap();
    let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
    let mut found = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3);
        let anonymous = path.is_none() || path == Some("[heap]");
        if !anonymous || !perms.starts_with("rw") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            mem.seek(SeekFrom::Start(at)).unwrap();
            if mem.read_exact(&mut buf[..n]).is_err() {
                break;
            }
            found += buf[..n]
                .windows(masked.len())
                .filter(|w| w.iter().zip(masked).all(|(b, m)| b ^ MASK == *m))
                .count();
            if n < buf.len() {
                break;
            }
            // Overlap so that a match across chunks is not missed.
            at += (n - masked.len()) as u64;
        }
    }
    found
}

/// Child role "import": a C_CreateObject with a password, then the scan.
#[test]
fn import_with_a_password() {
    if child_role().as_deref() != Some("import") {
        return;
    }
    let p = load();
    let s = user_session(&p, token_slots(&p)[0]);
    let mut maps = String::with_capacity(1 << 20);
    let mut buf = vec![0u8; 1 << 20];
    let mut password = [0u8; 64];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut password)
        .unwrap();
    let masked: Vec<u8> = password[32..].iter().map(|b| b ^ MASK).collect();
    let class: CK_ULONG = CKO_PRIVATE_KEY;
    let mut file = *b"not a key file";
    let mut template = [
        CK_ATTRIBUTE {
            type_: CKA_CLASS,
            pValue: &class as *const CK_ULONG as *mut std::ffi::c_void,
            ulValueLen: std::mem::size_of::<CK_ULONG>() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_TPMKEY_KEY_FILE,
            pValue: file.as_mut_ptr().cast(),
            ulValueLen: file.len() as CK_ULONG,
        },
        CK_ATTRIBUTE {
            type_: CKA_TPMKEY_KEY_AUTH,
            pValue: password.as_mut_ptr().cast(),
            ulValueLen: password.len() as CK_ULONG,
        },
    ];
    let mut handle: CK_OBJECT_HANDLE = 0;
    // SAFETY: a live session; the template's buffers live across the call.
    let rv = unsafe {
        function_list().C_CreateObject.unwrap()(
            s.handle(),
            template.as_mut_ptr(),
            template.len() as CK_ULONG,
            &mut handle,
        )
    };
    for b in password.iter_mut() {
        // SAFETY: a byte of our own array.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    let found = occurrences(&masked, &mut maps, &mut buf);
    println!("rv 0x{rv:x}");
    println!("found {found}");
}

#[test]
fn a_key_password_in_a_template_leaves_no_copy() {
    let _env = TestEnv::new("per-operation");
    drop(token_with_keys("secrets"));
    let out = child("import_with_a_password", "import").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rv 0x13\n"),
        "CKR_ATTRIBUTE_VALUE_INVALID expected: {stdout}"
    );
    assert!(stdout.contains("found 0\n"), "{stdout}");
}
