//! tpmkey-provider: the OpenSSL 3 provider `tpmkey` (loaded as `tpmkey.so`), giving
//! OpenSSL applications TPM-resident keys through the shared core crate `tpmkey`.
//!
//! Raw pointers live in `ffi` and the small views over it (`params`, `bio`, `error`,
//! `key`'s handle conversion); one module per OpenSSL operation uses only those views.

#![deny(unreachable_pub)]

mod asym_cipher;
mod bio;
mod buffer;
mod capabilities;
mod decoder;
mod der;
mod drbg;
mod encoder;
mod ephemeral_ec;
mod error;
mod ffi;
mod key;
mod keyexch;
mod keymgmt;
mod opctx;
mod openssl_cnf;
mod padding;
mod params;
mod provider;
mod rand;
mod signature;
mod software;
mod store;

/// Builds a dispatch table from `(id, function)` pairs; every entry is cast to the generic
/// function pointer type the core expects (it casts back by id).
macro_rules! dispatch_table {
    ($($id:expr => $f:expr),* $(,)?) => {
        &[
            $(
                $crate::ffi::OSSL_DISPATCH {
                    function_id: $id,
                    // SAFETY: the core calls the function with the signature its id names;
                    // each entry here is declared with exactly that signature.
                    function: Some(unsafe {
                        std::mem::transmute::<*const (), $crate::ffi::DispatchFn>($f as *const ())
                    }),
                },
            )*
            $crate::ffi::OSSL_DISPATCH::END,
        ]
    };
}
pub(crate) use dispatch_table;

/// One algorithm table entry: names, properties, dispatch table.
macro_rules! algorithm {
    ($names:expr, $props:expr, $table:expr) => {
        $crate::ffi::OSSL_ALGORITHM {
            algorithm_names: $names.as_ptr(),
            property_definition: $props.as_ptr(),
            implementation: $table.as_ptr(),
            algorithm_description: std::ptr::null(),
        }
    };
}
pub(crate) use algorithm;

/// The property every algorithm of this provider carries.
pub const PROPERTIES: &std::ffi::CStr = c"provider=tpmkey";
