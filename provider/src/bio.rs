//! The application's BIOs as the core lends them to decoders and encoders.

use std::sync::OnceLock;

use tpmkey::{Error, Result};

use crate::ffi::{BioReadExFn, BioWriteExFn, OSSL_CORE_BIO};

#[derive(Clone, Copy, Debug)]
pub(crate) struct BioUpcalls {
    pub read_ex: Option<BioReadExFn>,
    pub write_ex: Option<BioWriteExFn>,
}

static UPCALLS: OnceLock<BioUpcalls> = OnceLock::new();

pub(crate) fn install(upcalls: BioUpcalls) {
    let _ = UPCALLS.set(upcalls);
}

/// Input bigger than this is no key file.
const MAX_INPUT: usize = 1 << 20;

/// A core BIO, borrowed for one call.
#[derive(Debug)]
pub(crate) struct CoreBio {
    bio: *mut OSSL_CORE_BIO,
}

impl CoreBio {
    /// # Safety
    /// `bio` is a core BIO valid for the view's life (or NULL).
    pub(crate) unsafe fn from_ptr(bio: *mut OSSL_CORE_BIO) -> CoreBio {
        CoreBio { bio }
    }

    /// Reads everything up to [`MAX_INPUT`] bytes.
    pub(crate) fn read_all(&self) -> Result<Vec<u8>> {
        let read = UPCALLS
            .get()
            .and_then(|u| u.read_ex)
            .ok_or_else(|| Error::Unsupported("the core offers no BIO_read_ex".into()))?;
        if self.bio.is_null() {
            return Err(Error::BadInput("no input BIO".into()));
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let mut n = 0usize;
            // SAFETY: bio is the core's, buf is writable for its length, n is a valid out-pointer.
            let ok = unsafe { read(self.bio, buf.as_mut_ptr().cast(), buf.len(), &mut n) };
            if ok == 0 || n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n.min(buf.len())]);
            if out.len() > MAX_INPUT {
                return Err(Error::BadInput("input larger than 1 MiB: not a key".into()));
            }
        }
        Ok(out)
    }

    pub(crate) fn write_all(&self, data: &[u8]) -> Result<()> {
        let write = UPCALLS
            .get()
            .and_then(|u| u.write_ex)
            .ok_or_else(|| Error::Unsupported("the core offers no BIO_write_ex".into()))?;
        if self.bio.is_null() {
            return Err(Error::BadInput("no output BIO".into()));
        }
        let mut done = 0;
        while done < data.len() {
            let mut n = 0usize;
            // SAFETY: bio is the core's; data[done..] is readable for its length.
            let ok = unsafe {
                write(
                    self.bio,
                    data[done..].as_ptr().cast(),
                    data.len() - done,
                    &mut n,
                )
            };
            if ok == 0 || n == 0 {
                return Err(Error::Io {
                    path: "output".into(),
                    source: std::io::Error::other("BIO_write_ex failed"),
                });
            }
            done += n;
        }
        Ok(())
    }
}
