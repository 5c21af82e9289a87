//! The provider's own openssl.cnf section, checked at load: OpenSSL hands a provider only
//! the values it asks for by name, so a misspelt key would be ignored silently. The file
//! libcrypto reads (`OPENSSL_CONF`, else its default) is read again here, the section that
//! configures this provider found (`openssl_conf` -> `providers` -> this provider's name),
//! and a key neither OpenSSL nor tpmkey knows is refused with the section and key named,
//! as `tpmkey.conf` refuses one with file and line.

use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};

use openssl_sys as sys;
use tpmkey::{Error, Result};

/// Keys OpenSSL itself takes from a provider section (provider_conf.c).
const OPENSSL_KEYS: &[&str] = &["module", "activate", "identity", "soft_load"];

#[repr(C)]
struct ConfValue {
    section: *mut c_char,
    name: *mut c_char,
    value: *mut c_char,
}

extern "C" {
    fn NCONF_load(conf: *mut sys::CONF, file: *const c_char, eline: *mut c_long) -> c_int;
    fn NCONF_get_string(
        conf: *const sys::CONF,
        group: *const c_char,
        name: *const c_char,
    ) -> *mut c_char;
    fn NCONF_get_section(conf: *const sys::CONF, section: *const c_char) -> *mut c_void;
    fn CONF_get1_default_config_file() -> *mut c_char;
    fn ERR_set_mark() -> c_int;
    fn ERR_pop_to_mark() -> c_int;
}

/// A loaded configuration file, freed on drop.
struct Conf(*mut sys::CONF);

impl Drop for Conf {
    fn drop(&mut self) {
        // SAFETY: created by NCONF_new, freed once.
        unsafe { sys::NCONF_free(self.0) }
    }
}

impl Conf {
    fn load(path: &CStr) -> Option<Conf> {
        // SAFETY: plain constructor; checked for NULL.
        let conf = Conf(unsafe { sys::NCONF_new(std::ptr::null_mut()) });
        if conf.0.is_null() {
            return None;
        }
        let mut line: c_long = 0;
        // SAFETY: conf is live, path NUL-terminated, line a valid out-pointer.
        (unsafe { NCONF_load(conf.0, path.as_ptr(), &mut line) } == 1).then_some(conf)
    }

    /// The value of `name` in `section` (None: the unnamed default section).
    fn string(&self, section: Option<&str>, name: &str) -> Option<String> {
        let section = section.map(CString::new).transpose().ok()?;
        let name = CString::new(name).ok()?;
        // SAFETY: conf is live; the strings are NUL-terminated; the result belongs to conf
        // and is copied before conf goes.
        let v = unsafe {
            NCONF_get_string(
                self.0,
                section.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                name.as_ptr(),
            )
        };
        // SAFETY: NULL or a NUL-terminated string owned by conf.
        (!v.is_null()).then(|| unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
    }

    /// The (name, value) pairs of `section`, in file order.
    fn section(&self, section: &str) -> Vec<(String, String)> {
        let Ok(section) = CString::new(section) else {
            return Vec::new();
        };
        // SAFETY: conf is live, section NUL-terminated; the stack belongs to conf.
        let stack = unsafe { NCONF_get_section(self.0, section.as_ptr()) };
        if stack.is_null() {
            return Vec::new();
        }
        // SAFETY: a STACK_OF(CONF_VALUE) owned by conf.
        let n = unsafe { sys::OPENSSL_sk_num(stack.cast()) };
        (0..n)
            .filter_map(|i| {
                // SAFETY: i < n; each element is a CONF_VALUE owned by conf.
                let v = unsafe {
                    sys::OPENSSL_sk_value(stack.cast(), i)
                        .cast::<ConfValue>()
                        .as_ref()
                }?;
                if v.name.is_null() || v.value.is_null() {
                    return None;
                }
                // SAFETY: NUL-terminated strings owned by conf.
                let (name, value) = unsafe { (CStr::from_ptr(v.name), CStr::from_ptr(v.value)) };
                Some((
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                ))
            })
            .collect()
    }
}

/// The file libcrypto loads its configuration from.
fn config_file() -> Option<CString> {
    // SAFETY: returns a copy the caller frees with OPENSSL_free (CRYPTO_free).
    let p = unsafe { CONF_get1_default_config_file() };
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string we own until freed below.
    let path = unsafe { CStr::from_ptr(p) }.to_owned();
    // SAFETY: allocated by libcrypto's allocator, freed once.
    unsafe { sys::CRYPTO_free(p.cast(), c"openssl_cnf.rs".as_ptr(), 0) };
    Some(path)
}

/// The keys of the section that configures provider `name` that nobody knows.
fn unknown_keys(conf: &Conf, provider: &str, known: &[&str]) -> Option<(String, Vec<String>)> {
    let init = conf.string(None, "openssl_conf")?;
    let providers = conf.string(Some(&init), "providers")?;
    let section = conf
        .section(&providers)
        .into_iter()
        .find(|(name, _)| name == provider)
        .map(|(_, section)| section)?;
    let unknown: Vec<String> = conf
        .section(&section)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !OPENSSL_KEYS.contains(&name.as_str()) && !known.contains(&name.as_str()))
        .collect();
    Some((section, unknown))
}

/// Refuses the provider's openssl.cnf section when it holds a key nobody knows. A file
/// that cannot be read, or that does not configure this provider, is left to OpenSSL.
pub(crate) fn check_section(provider: &str) -> Result<()> {
    let Some(path) = config_file() else {
        return Ok(());
    };
    // Lookups of absent keys leave errors on the queue: dropped with the mark.
    // SAFETY: sets a mark on this thread's error queue, popped below.
    unsafe { ERR_set_mark() };
    let found =
        Conf::load(&path).and_then(|conf| unknown_keys(&conf, provider, tpmkey::config::KEYS));
    // SAFETY: pops to the mark set above.
    unsafe { ERR_pop_to_mark() };
    match found {
        Some((section, unknown)) if !unknown.is_empty() => Err(Error::Config(format!(
            "{}, section [{section}]: unknown key \"{}\" (known: {}, {})",
            path.to_string_lossy(),
            unknown.join("\", \""),
            OPENSSL_KEYS.join(", "),
            tpmkey::config::KEYS.join(", ")
        ))),
        _ => Ok(()),
    }
}
