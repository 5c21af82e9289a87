//! The TCTI: a configuration string (`device:`, `swtpm:`, `mssim:`, `tabrmd:`) turned into a
//! byte pipe to the TPM. libtss2-tctildr opens `device:`, `mssim:` and any other TCTI
//! library; tpmkey reaches `tabrmd:` itself ([`tabrmd`]) because the library's GLib threads
//! do not survive fork, and `swtpm:` ([`swtpm`]) because the library's swtpm TCTI waited
//! for ever on a response cut inside its header. This is the only place that calls into
//! tpm2-tss.

mod dbus;
mod socket;
mod swtpm;
mod tabrmd;

use std::ffi::CString;
use std::ptr;
use std::time::Duration;

use tss_esapi_sys as sys;

use crate::error::{Error, Result};
use crate::response_code::ResponseCode;

/// Largest response a TPM sends (TPM_PT_MAX_RESPONSE_SIZE is 4096 on every TPM we know).
const MAX_RESPONSE: usize = 8192;
/// A function answering commands in place of a TPM.
type Answer = Box<dyn FnMut(&[u8]) -> Vec<u8> + Send>;

pub struct Tcti {
    /// libtss2-tctildr's context; null for a native transport or once abandoned.
    context: *mut sys::TSS2_TCTI_CONTEXT,
    native: Option<socket::Socket>,
    /// Answers given by a function instead of a TPM: the response-parser fuzz targets.
    scripted: Option<Answer>,
    conf: String,
    /// How long to wait for a response, in milliseconds.
    timeout_ms: i32,
}

// SAFETY: the TCTI context is only used through `&mut self`, and the connection that owns it
// sits behind a mutex; tpm2-tss TCTIs hold no thread-affine state.
unsafe impl Send for Tcti {}

impl std::fmt::Debug for Tcti {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tcti").field("conf", &self.conf).finish()
    }
}

impl Tcti {
    /// Opens the TCTI named by `conf`, waiting at most `timeout` for each response; an
    /// empty string is refused (tpm2-tss would probe).
    pub fn open(conf: &str, timeout: Duration) -> Result<Tcti> {
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        if conf.trim().is_empty() {
            return Err(Error::Config(
                "empty TCTI: tpmkey never lets tpm2-tss probe for a TPM".into(),
            ));
        }
        let native = if conf.starts_with("tabrmd") {
            Some(tabrmd::open(conf, timeout))
        } else if conf.starts_with("swtpm") {
            Some(swtpm::open(conf, timeout))
        } else {
            None
        };
        if let Some(native) = native {
            let native = native.map_err(|cause| Error::Tcti {
                tcti: conf.into(),
                cause,
            })?;
            return Ok(Tcti {
                context: ptr::null_mut(),
                native: Some(native),
                scripted: None,
                conf: conf.into(),
                timeout_ms,
            });
        }
        let c_conf = CString::new(conf)
            .map_err(|_| Error::Config(format!("TCTI \"{conf}\" contains a NUL byte")))?;
        let mut context: *mut sys::TSS2_TCTI_CONTEXT = ptr::null_mut();
        // SAFETY: c_conf is a valid C string for the duration of the call; context is an out pointer.
        let rc = unsafe { sys::Tss2_TctiLdr_Initialize(c_conf.as_ptr(), &mut context) };
        if rc != 0 || context.is_null() {
            return Err(Error::Tcti {
                tcti: conf.into(),
                cause: open_failure(conf, rc),
            });
        }
        Ok(Tcti {
            context,
            native: None,
            scripted: None,
            conf: conf.into(),
            timeout_ms,
        })
    }

    /// A TCTI whose every response is `answer(command)`: for fuzzing the response parsers
    /// in-process. Never reachable from a configuration string.
    #[doc(hidden)]
    pub fn scripted(answer: impl FnMut(&[u8]) -> Vec<u8> + Send + 'static) -> Tcti {
        Tcti {
            context: ptr::null_mut(),
            native: None,
            scripted: Some(Box::new(answer)),
            conf: "scripted".into(),
            timeout_ms: 0,
        }
    }

    pub fn conf(&self) -> &str {
        &self.conf
    }

    /// Sends one command and returns the TPM's response bytes.
    pub fn execute(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        if let Some(answer) = self.scripted.as_mut() {
            return Ok(answer(command));
        }
        if let Some(native) = self.native.as_mut() {
            return native
                .execute(command, MAX_RESPONSE)
                .map_err(|cause| Error::Tcti {
                    tcti: self.conf.clone(),
                    cause,
                });
        }
        if self.context.is_null() {
            return Err(self.error("the connection was abandoned", 0));
        }
        let common = self.context.cast::<sys::TSS2_TCTI_CONTEXT_COMMON_V1>();
        // SAFETY: every TCTI context starts with the v1 common header (tss2_tcti.h).
        let (transmit, receive) = unsafe { ((*common).transmit, (*common).receive) };
        let (Some(transmit), Some(receive)) = (transmit, receive) else {
            return Err(self.error("TCTI has no transmit/receive functions", 0));
        };
        // SAFETY: command is a valid buffer of the given length; context is live.
        let rc = unsafe { transmit(self.context, command.len() as sys::size_t, command.as_ptr()) };
        if rc != 0 {
            return Err(self.error("sending the command failed", rc));
        }
        let mut response = vec![0u8; MAX_RESPONSE];
        let mut size = response.len() as sys::size_t;
        // SAFETY: response has `size` writable bytes; size is updated to the bytes written.
        let rc = unsafe {
            receive(
                self.context,
                &mut size,
                response.as_mut_ptr(),
                self.timeout_ms,
            )
        };
        if rc != 0 {
            return Err(self.error("receiving the response failed", rc));
        }
        response.truncate((size as usize).min(MAX_RESPONSE));
        Ok(response)
    }

    fn error(&self, what: &str, rc: u32) -> Error {
        let cause = if rc == 0 {
            what.to_string()
        } else {
            format!("{what}: {}", ResponseCode(rc))
        };
        Error::Tcti {
            tcti: self.conf.clone(),
            cause,
        }
    }

    /// Forgets the context without closing it: a forked child must not tear down the
    /// parent's connection (a TCTI finalizer may send on the shared socket). A native
    /// socket is closed: that drops only the child's reference to it.
    pub fn abandon(mut self) {
        self.context = ptr::null_mut();
    }
}

/// Why a TCTI did not open. The raw device admits one open file at a time, which after a
/// fork the parent still holds: say so, and name the device that fits.
fn open_failure(conf: &str, rc: u32) -> String {
    let mut cause = format!("cannot open: {}", ResponseCode(rc));
    let device = conf.strip_prefix("device:").unwrap_or_default();
    if conf.starts_with("device:") && !device.contains("tpmrm") {
        cause.push_str(&format!(
            "; {} admits one process at a time, so it fails while another process (or the \
             parent of this one, before fork) holds it: use the kernel resource manager \
             device:/dev/tpmrm0 instead",
            if device.is_empty() {
                "/dev/tpm0"
            } else {
                device
            }
        ));
    }
    cause
}

impl Drop for Tcti {
    fn drop(&mut self) {
        if !self.context.is_null() {
            // SAFETY: context came from Tss2_TctiLdr_Initialize and is finalized once.
            unsafe { sys::Tss2_TctiLdr_Finalize(&mut self.context) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_device_failure_names_the_resource_manager() {
        let m = open_failure("device:/dev/tpm0", 0xA000A);
        assert!(
            m.contains("one process at a time") && m.contains("/dev/tpmrm0"),
            "{m}"
        );
        assert!(!open_failure("device:/dev/tpmrm0", 0xA000A).contains("one process"));
        assert!(!open_failure("swtpm:port=1", 0xA000A).contains("one process"));
    }
}
