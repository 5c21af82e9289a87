//! Safe views over OSSL_PARAM arrays: reading what the core hands in, answering what it
//! asks for, and building arrays to hand out (object references, exports, verification).

use std::ffi::{c_char, c_void, CStr, CString};

use tpmkey::{Error, Result};

use crate::ffi::{
    OSSL_CALLBACK, OSSL_PARAM, OSSL_PARAM_INTEGER, OSSL_PARAM_OCTET_PTR, OSSL_PARAM_OCTET_STRING,
    OSSL_PARAM_UNMODIFIED, OSSL_PARAM_UNSIGNED_INTEGER, OSSL_PARAM_UTF8_PTR,
    OSSL_PARAM_UTF8_STRING,
};

/// A parameter array the core owns (NULL-key terminated).
#[derive(Debug)]
pub(crate) struct Params {
    ptr: *mut OSSL_PARAM,
}

/// One element of a [`Params`].
#[derive(Debug)]
pub(crate) struct Param<'a> {
    p: &'a mut OSSL_PARAM,
}

impl Params {
    /// # Safety
    /// `ptr` is NULL or a NULL-key-terminated OSSL_PARAM array valid for the view's life.
    pub(crate) unsafe fn from_ptr(ptr: *const OSSL_PARAM) -> Params {
        Params {
            ptr: ptr as *mut OSSL_PARAM,
        }
    }

    /// All elements, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Param<'_>> {
        let mut i = 0usize;
        std::iter::from_fn(move || {
            if self.ptr.is_null() {
                return None;
            }
            // SAFETY: from_ptr's contract: the array is terminated by a NULL key; we stop there.
            let p = unsafe { &mut *self.ptr.add(i) };
            if p.key.is_null() {
                return None;
            }
            i += 1;
            Some(Param { p })
        })
    }

    /// The first element called `name`.
    pub(crate) fn get(&self, name: &CStr) -> Option<Param<'_>> {
        self.iter().find(|p| p.key() == name)
    }
}

fn wrong_type(key: &CStr, want: &str) -> Error {
    Error::BadInput(format!(
        "parameter \"{}\" is not {want}",
        key.to_string_lossy()
    ))
}

impl Param<'_> {
    pub(crate) fn key(&self) -> &CStr {
        // SAFETY: iter() only yields elements with a non-NULL, NUL-terminated key.
        unsafe { CStr::from_ptr(self.p.key) }
    }

    fn bytes(&self) -> &[u8] {
        if self.p.data.is_null() {
            return &[];
        }
        // SAFETY: the core guarantees data points at data_size bytes.
        unsafe { std::slice::from_raw_parts(self.p.data as *const u8, self.p.data_size) }
    }

    fn ptr_bytes(&self) -> &[u8] {
        if self.p.data.is_null() {
            return &[];
        }
        // SAFETY: a *_PTR parameter's data points at a pointer to data_size bytes.
        let inner = unsafe { *(self.p.data as *const *const u8) };
        if inner.is_null() {
            return &[];
        }
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(inner, self.p.data_size) }
    }

    /// A UTF-8 string (or pointer) parameter.
    pub(crate) fn utf8(&self) -> Result<String> {
        let raw = match self.p.data_type {
            OSSL_PARAM_UTF8_STRING => self.bytes(),
            OSSL_PARAM_UTF8_PTR => self.ptr_bytes(),
            _ => return Err(wrong_type(self.key(), "a string")),
        };
        let raw = raw.split(|b| *b == 0).next().unwrap_or_default();
        String::from_utf8(raw.to_vec()).map_err(|_| wrong_type(self.key(), "UTF-8"))
    }

    /// An octet string (or pointer) parameter.
    pub(crate) fn octets(&self) -> Result<&[u8]> {
        match self.p.data_type {
            OSSL_PARAM_OCTET_STRING => Ok(self.bytes()),
            OSSL_PARAM_OCTET_PTR => Ok(self.ptr_bytes()),
            _ => Err(wrong_type(self.key(), "an octet string")),
        }
    }

    /// A signed or unsigned integer (any native width up to 8 bytes); also accepts a
    /// decimal or 0x-hex string.
    pub(crate) fn int(&self) -> Result<i64> {
        let b = self.bytes();
        let signed = match self.p.data_type {
            OSSL_PARAM_INTEGER => true,
            OSSL_PARAM_UNSIGNED_INTEGER => false,
            OSSL_PARAM_UTF8_STRING | OSSL_PARAM_UTF8_PTR => {
                return parse_number(&self.utf8()?)
                    .ok_or_else(|| wrong_type(self.key(), "a number"))
            }
            _ => return Err(wrong_type(self.key(), "an integer")),
        };
        if b.len() > 8 {
            return Err(wrong_type(self.key(), "an integer of at most 64 bits"));
        }
        // OSSL_PARAM_allocate_from_text (openssl -pkeyopt name:0) gives zero as no bytes.
        if b.is_empty() {
            return Ok(0);
        }
        let mut le = [0u8; 8];
        if cfg!(target_endian = "little") {
            le[..b.len()].copy_from_slice(b);
        } else {
            for (i, byte) in b.iter().rev().enumerate() {
                le[i] = *byte;
            }
        }
        let negative = signed && le[b.len() - 1] & 0x80 != 0;
        if negative {
            le[b.len()..].fill(0xFF);
        }
        let v = u64::from_le_bytes(le);
        if signed {
            Ok(v as i64)
        } else {
            i64::try_from(v).map_err(|_| wrong_type(self.key(), "a number in range"))
        }
    }

    /// An unsigned big number, returned big-endian (OSSL_PARAM stores native-endian).
    pub(crate) fn big_unsigned(&self) -> Result<Vec<u8>> {
        if self.p.data_type != OSSL_PARAM_UNSIGNED_INTEGER {
            return Err(wrong_type(self.key(), "an unsigned integer"));
        }
        let mut v = self.bytes().to_vec();
        if cfg!(target_endian = "little") {
            v.reverse();
        }
        Ok(v)
    }

    /// True when the string or integer parameter is a string.
    pub(crate) fn is_string(&self) -> bool {
        matches!(
            self.p.data_type,
            OSSL_PARAM_UTF8_STRING | OSSL_PARAM_UTF8_PTR
        )
    }

    fn answer(&mut self, data: &[u8]) -> Result<()> {
        self.p.return_size = data.len();
        if self.p.data.is_null() {
            return Ok(()); // the caller asks for the size only
        }
        if self.p.data_size < data.len() {
            return Err(Error::BadInput(format!(
                "buffer of {} bytes for parameter \"{}\" is too small ({} needed)",
                self.p.data_size,
                self.key().to_string_lossy(),
                data.len()
            )));
        }
        // SAFETY: data points at data_size >= data.len() writable bytes (core contract).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.p.data as *mut u8, data.len());
        }
        Ok(())
    }

    /// Answers with an integer in whatever integer width the caller chose.
    pub(crate) fn set_int(&mut self, v: i64) -> Result<()> {
        let size = if self.p.data.is_null() {
            8
        } else {
            self.p.data_size
        };
        match (self.p.data_type, size) {
            (OSSL_PARAM_INTEGER, 4) => {
                let v = i32::try_from(v).map_err(|_| wrong_type(self.key(), "wide enough"))?;
                self.answer(&v.to_ne_bytes())
            }
            (OSSL_PARAM_INTEGER, 8) => self.answer(&v.to_ne_bytes()),
            (OSSL_PARAM_UNSIGNED_INTEGER, 4) => {
                let v = u32::try_from(v).map_err(|_| wrong_type(self.key(), "in range"))?;
                self.answer(&v.to_ne_bytes())
            }
            (OSSL_PARAM_UNSIGNED_INTEGER, 8) => {
                let v = u64::try_from(v).map_err(|_| wrong_type(self.key(), "in range"))?;
                self.answer(&v.to_ne_bytes())
            }
            (OSSL_PARAM_UTF8_STRING, _) => self.set_utf8(&v.to_string()),
            _ => Err(wrong_type(self.key(), "an integer")),
        }
    }

    /// Answers with a string (NUL-terminated when there is room, as OpenSSL does).
    pub(crate) fn set_utf8(&mut self, s: &str) -> Result<()> {
        match self.p.data_type {
            OSSL_PARAM_UTF8_STRING => {
                self.answer(s.as_bytes())?;
                if !self.p.data.is_null() && self.p.data_size > s.len() {
                    // SAFETY: data_size > s.len(): the terminator fits.
                    unsafe { *(self.p.data as *mut u8).add(s.len()) = 0 };
                }
                Ok(())
            }
            OSSL_PARAM_UTF8_PTR => Err(wrong_type(self.key(), "a string buffer")),
            _ => Err(wrong_type(self.key(), "a string")),
        }
    }

    /// Answers with a static string through a UTF8_PTR parameter (or copies it).
    pub(crate) fn set_utf8_static(&mut self, s: &'static CStr) -> Result<()> {
        if self.p.data_type == OSSL_PARAM_UTF8_PTR {
            if self.p.data.is_null() {
                return Err(wrong_type(self.key(), "a pointer slot"));
            }
            // SAFETY: a UTF8_PTR parameter's data points at a `const char *` slot.
            unsafe { *(self.p.data as *mut *const c_char) = s.as_ptr() };
            self.p.return_size = s.to_bytes().len();
            return Ok(());
        }
        self.set_utf8(&s.to_string_lossy())
    }

    pub(crate) fn set_octets(&mut self, v: &[u8]) -> Result<()> {
        if self.p.data_type != OSSL_PARAM_OCTET_STRING {
            return Err(wrong_type(self.key(), "an octet string"));
        }
        self.answer(v)
    }

    /// Answers with an unsigned big number given big-endian.
    pub(crate) fn set_big_unsigned(&mut self, be: &[u8]) -> Result<()> {
        if self.p.data_type != OSSL_PARAM_UNSIGNED_INTEGER {
            return Err(wrong_type(self.key(), "an unsigned integer"));
        }
        let be = &be[be.iter().take_while(|b| **b == 0).count()..];
        let size = if self.p.data.is_null() {
            be.len()
        } else {
            self.p.data_size
        };
        if size < be.len() {
            return self.answer(be); // reports too small
        }
        let mut v = vec![0u8; size - be.len()];
        v.extend_from_slice(be);
        if cfg!(target_endian = "little") {
            v.reverse();
        }
        self.answer(&v)
    }
}

fn parse_number(s: &str) -> Option<i64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => i64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// An OSSL_PARAM array we own, with the storage its elements point at.
#[derive(Debug, Default)]
pub(crate) struct ParamList {
    // Boxed so that element pointers survive the vectors growing.
    names: Vec<CString>,
    storage: Vec<Box<[u8]>>,
    items: Vec<(usize, u32, usize)>, // (name index, type, storage index)
    array: Vec<OSSL_PARAM>,
}

impl ParamList {
    pub(crate) fn new() -> ParamList {
        ParamList::default()
    }

    fn push(&mut self, key: &CStr, data_type: u32, data: Vec<u8>) -> &mut Self {
        self.names.push(key.to_owned());
        self.storage.push(data.into_boxed_slice());
        self.items
            .push((self.names.len() - 1, data_type, self.storage.len() - 1));
        self
    }

    pub(crate) fn utf8(&mut self, key: &CStr, v: &str) -> &mut Self {
        let mut data = v.as_bytes().to_vec();
        data.push(0);
        self.push(key, OSSL_PARAM_UTF8_STRING, data)
    }

    pub(crate) fn octets(&mut self, key: &CStr, v: &[u8]) -> &mut Self {
        self.push(key, OSSL_PARAM_OCTET_STRING, v.to_vec())
    }

    pub(crate) fn int(&mut self, key: &CStr, v: i32) -> &mut Self {
        self.push(key, OSSL_PARAM_INTEGER, v.to_ne_bytes().to_vec())
    }

    pub(crate) fn uint(&mut self, key: &CStr, v: u32) -> &mut Self {
        self.push(key, OSSL_PARAM_UNSIGNED_INTEGER, v.to_ne_bytes().to_vec())
    }

    /// An unsigned big number given big-endian.
    pub(crate) fn big_unsigned(&mut self, key: &CStr, be: &[u8]) -> &mut Self {
        let mut v = be[be.iter().take_while(|b| **b == 0).count()..].to_vec();
        if v.is_empty() {
            v.push(0);
        }
        if cfg!(target_endian = "little") {
            v.reverse();
        }
        self.push(key, OSSL_PARAM_UNSIGNED_INTEGER, v)
    }

    /// Hands the list to a core callback (an export, a decoded object, a capability);
    /// `what` names it in the error when the core refuses it.
    ///
    /// # Safety
    /// `cb` and `arg` are a pair the core handed to the current call.
    pub(crate) unsafe fn hand_to(
        &mut self,
        cb: Option<OSSL_CALLBACK>,
        arg: *mut c_void,
        what: &str,
    ) -> Result<()> {
        let cb = cb.ok_or_else(|| Error::BadInput(format!("{what}: no callback")))?;
        // SAFETY: caller's contract; the array lives across the call.
        if unsafe { cb(self.as_ptr(), arg) } == 1 {
            Ok(())
        } else {
            Err(Error::BadInput(format!("OpenSSL did not accept {what}")))
        }
    }

    /// The terminated array; valid while `self` is neither changed nor dropped.
    pub(crate) fn as_ptr(&mut self) -> *const OSSL_PARAM {
        self.array.clear();
        for (name, data_type, storage) in &self.items {
            let data = &mut self.storage[*storage];
            let data_size = if *data_type == OSSL_PARAM_UTF8_STRING {
                data.len() - 1
            } else {
                data.len()
            };
            self.array.push(OSSL_PARAM {
                key: self.names[*name].as_ptr(),
                data_type: *data_type,
                data: data.as_mut_ptr() as *mut c_void,
                data_size,
                return_size: OSSL_PARAM_UNMODIFIED,
            });
        }
        self.array.push(OSSL_PARAM {
            key: std::ptr::null(),
            data_type: 0,
            data: std::ptr::null_mut(),
            data_size: 0,
            return_size: 0,
        });
        self.array.as_ptr()
    }
}

/// A static description of parameters (gettable/settable lists).
#[derive(Debug)]
pub(crate) struct ParamTable(pub &'static [OSSL_PARAM]);

// SAFETY: the tables are immutable statics whose pointers are string literals or NULL.
unsafe impl Sync for ParamTable {}

impl ParamTable {
    pub(crate) fn as_ptr(&self) -> *const OSSL_PARAM {
        self.0.as_ptr()
    }
}

/// One entry of a static parameter table.
pub(crate) const fn describe(key: &'static CStr, data_type: u32) -> OSSL_PARAM {
    OSSL_PARAM {
        key: key.as_ptr(),
        data_type,
        data: std::ptr::null_mut(),
        data_size: 0,
        return_size: 0,
    }
}

/// The terminator of a static parameter table.
pub(crate) const END: OSSL_PARAM = OSSL_PARAM {
    key: std::ptr::null(),
    data_type: 0,
    data: std::ptr::null_mut(),
    data_size: 0,
    return_size: 0,
};

/// A request for string values the core answers with pointers to its own strings (the
/// provider's openssl.cnf section, OSSL_FUNC_CORE_GET_PARAMS).
#[derive(Debug)]
pub(crate) struct StringRequest {
    names: Vec<CString>,
    slots: Box<[*const c_char]>,
    array: Vec<OSSL_PARAM>,
}

impl StringRequest {
    pub(crate) fn new(keys: &[&str]) -> StringRequest {
        let names: Vec<CString> = keys.iter().filter_map(|k| CString::new(*k).ok()).collect();
        let mut slots = vec![std::ptr::null::<c_char>(); names.len()].into_boxed_slice();
        let mut array: Vec<OSSL_PARAM> = names
            .iter()
            .zip(slots.iter_mut())
            .map(|(name, slot)| OSSL_PARAM {
                key: name.as_ptr(),
                data_type: OSSL_PARAM_UTF8_PTR,
                data: (slot as *mut *const c_char).cast(),
                data_size: 0,
                return_size: OSSL_PARAM_UNMODIFIED,
            })
            .collect();
        array.push(END);
        StringRequest {
            names,
            slots,
            array,
        }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut OSSL_PARAM {
        self.array.as_mut_ptr()
    }

    /// The keys the core answered, with their values.
    pub(crate) fn answers(&self) -> Vec<(String, String)> {
        self.names
            .iter()
            .zip(self.slots.iter())
            .filter(|(_, slot)| !slot.is_null())
            .map(|(name, slot)| {
                // SAFETY: a non-NULL slot was set by the core to a NUL-terminated string it
                // keeps alive (its configuration).
                let value = unsafe { CStr::from_ptr(*slot) };
                (
                    name.to_string_lossy().into_owned(),
                    value.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }
}
