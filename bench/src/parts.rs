//! Which parts of the comparison exist on this machine: a row whose part is missing is
//! reported as "n/a: <reason>", every other row runs.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::token::TPM2_PKCS11_MODULE;

/// target/release, where cargo put this binary and the two front-end libraries.
pub fn release_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "the bench binary has no directory".into())
}

/// Why each part is unavailable (`None`: it is there).
#[derive(Clone, Debug, Default)]
pub struct Parts {
    pub provider: Option<String>,
    pub pkcs11: Option<String>,
    pub tpm2_openssl: Option<String>,
    pub tpm2_pkcs11: Option<String>,
    pub nginx: Option<String>,
}

impl Parts {
    pub fn detect() -> Result<Parts, String> {
        let dir = release_dir()?;
        Ok(Parts {
            provider: missing_symbol(&dir.join("libtpmkey_provider.so"), "OSSL_provider_init"),
            pkcs11: missing_symbol(&dir.join("libtpmkey_pkcs11.so"), "C_GetFunctionList"),
            tpm2_openssl: missing_file(&tpm2_openssl_module()?, "tpm2-openssl"),
            tpm2_pkcs11: missing_file(Path::new(TPM2_PKCS11_MODULE), "libtpm2-pkcs11-1"),
            nginx: missing_file(Path::new("/usr/sbin/nginx"), "nginx"),
        })
    }
}

/// tpm2.so in libcrypto's MODULESDIR (`openssl version -m`).
pub fn tpm2_openssl_module() -> Result<PathBuf, String> {
    let out = std::process::Command::new("openssl")
        .args(["version", "-m"])
        .output()
        .map_err(|e| format!("openssl version -m: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let dir = text
        .trim()
        .strip_prefix("MODULESDIR: ")
        .map(|d| d.trim_matches('"'))
        .ok_or_else(|| format!("openssl version -m printed \"{}\"", text.trim()))?;
    Ok(Path::new(dir).join("tpm2.so"))
}

fn missing_file(path: &Path, package: &str) -> Option<String> {
    (!path.exists()).then(|| format!("{} missing (package {package})", path.display()))
}

/// Loads `lib` and looks up `symbol`; the reason when either fails.
fn missing_symbol(lib: &Path, symbol: &str) -> Option<String> {
    if !lib.exists() {
        return Some(format!("{} not built", lib.display()));
    }
    let (Ok(c_lib), Ok(c_sym)) = (
        CString::new(lib.as_os_str().as_encoded_bytes()),
        CString::new(symbol),
    ) else {
        return Some(format!("{}: path contains a NUL byte", lib.display()));
    };
    // SAFETY: c_lib is a valid C string; RTLD_LAZY|RTLD_LOCAL keeps the library's symbols
    // out of the global namespace. Its constructors run (Rust cdylibs have none that matter).
    let handle = unsafe { libc::dlopen(c_lib.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Some(format!("{} does not load", lib.display()));
    }
    // SAFETY: handle is a live dlopen handle and c_sym a valid C string.
    let found = !unsafe { libc::dlsym(handle, c_sym.as_ptr()) }.is_null();
    // SAFETY: handle came from dlopen above and is closed once; nothing from it is kept.
    unsafe { libc::dlclose(handle) };
    (!found).then(|| {
        let name = lib.file_name().unwrap_or_default().to_string_lossy();
        format!("{name} lacks {symbol} (not implemented yet)")
    })
}
