//! C_CreateObject: a private key that carries its private value is imported into the TPM
//! (`key_management`); any other object is stored as it is (`object`).

use cryptoki_sys::*;

use crate::attributes::{class, to_map, Template};
use crate::error::{Error, Result};

pub(crate) fn create_object(
    session: CK_SESSION_HANDLE,
    template: &Template,
) -> Result<CK_OBJECT_HANDLE> {
    let attrs = to_map(template)?;
    let class =
        class(&attrs).ok_or_else(|| Error::new(CKR_TEMPLATE_INCOMPLETE, "CKA_CLASS is missing"))?;
    if class == CKO_PRIVATE_KEY && crate::key_management::is_import(&attrs) {
        return crate::key_management::import(session, attrs);
    }
    crate::object::create(session, attrs, class)
}
