//! OpenSSL's caller-owned byte buffers: input slices and size-or-write outputs.

use std::ffi::c_uchar;

use tpmkey::{Error, Result};

/// Writes the produced bytes to OpenSSL's buffer, or the maximum size when the buffer is NULL.
///
/// # Safety
/// `out` is NULL or writable for `out_size` bytes; `out_len` a valid out-pointer.
pub(crate) unsafe fn answer<T: AsRef<[u8]>>(
    out: *mut c_uchar,
    out_len: *mut usize,
    out_size: usize,
    max: usize,
    produce: impl FnOnce() -> Result<T>,
) -> Result<()> {
    if out_len.is_null() {
        return Err(Error::BadInput("no output length pointer".into()));
    }
    if out.is_null() {
        // SAFETY: out_len checked non-NULL.
        unsafe { *out_len = max };
        return Ok(());
    }
    let produced = produce()?;
    let v = produced.as_ref();
    if v.len() > out_size {
        return Err(Error::BadInput(format!(
            "output buffer of {out_size} bytes is too small ({} needed)",
            v.len()
        )));
    }
    // SAFETY: out is writable for out_size >= v.len() bytes; out_len checked.
    unsafe {
        std::ptr::copy_nonoverlapping(v.as_ptr(), out, v.len());
        *out_len = v.len();
    }
    Ok(())
}

/// OpenSSL's input bytes; NULL with a non-zero length is an error (the caller's bug), as
/// PKCS#11 answers it with CKR_ARGUMENTS_BAD.
///
/// # Safety
/// `p` is NULL or readable for `len` bytes.
pub(crate) unsafe fn input<'a>(p: *const c_uchar, len: usize) -> Result<&'a [u8]> {
    if len == 0 {
        Ok(&[])
    } else if p.is_null() {
        Err(Error::BadInput(format!(
            "input of {len} bytes at a NULL pointer"
        )))
    } else {
        // SAFETY: caller's contract; checked non-NULL.
        Ok(unsafe { std::slice::from_raw_parts(p, len) })
    }
}
