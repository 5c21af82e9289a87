/*
 * tpmkey PKCS#11 module: vendor-defined attributes. Licensed under Apache-2.0.
 *
 * Bringing an existing TPM key into a token: C_CreateObject with CKA_CLASS =
 * CKO_PRIVATE_KEY and one of CKA_TPMKEY_KEY_FILE or CKA_TPMKEY_PERSISTENT_HANDLE, in a
 * read-write session where the user is logged in. The module gives the key the token's
 * own authValue with TPM2_ObjectChangeAuth and stores the new blob as a key pair (public
 * and private key object, like C_GenerateKeyPair); the handle returned is the private
 * key's. The key file or persistent object handed in is left as it is, with its old
 * password. CKA_ID, CKA_LABEL and the other settable attributes of the template apply to
 * both objects.
 *
 * Return codes with a tpmkey-specific cause (the log line says which; see TPMKEY_LOG in
 * tpmkey.conf(5)):
 *   CKR_TOKEN_NOT_RECOGNIZED  the token was made on another TPM or before a TPM clear
 *                             (C_GetTokenInfo, C_Login), or its description is damaged.
 *   CKR_PIN_LOCKED            the PIN reached its token's limit of wrong tries (the flags
 *                             CKF_USER_PIN_LOCKED / CKF_SO_PIN_LOCKED say so; the SO's
 *                             C_InitPIN unlocks the user PIN), or the TPM is in
 *                             dictionary-attack lockout (flags clear).
 *   CKR_CURVE_NOT_SUPPORTED   (0x140) an EC curve other than P-256 and P-384.
 *   CKR_USER_PIN_NOT_INITIALIZED  C_Login on the uninitialised token of the slot kept for
 *                             C_InitToken.
 */
#ifndef TPMKEY_PKCS11_H
#define TPMKEY_PKCS11_H

/* Base of tpmkey's attributes: CKA_VENDOR_DEFINED | "TPK\0". */
#define CKA_TPMKEY_VENDOR (0x80000000UL | 0x54504B00UL)

/* A TSS2 PRIVATE KEY file (PEM or DER) of a loadable key. */
#define CKA_TPMKEY_KEY_FILE (CKA_TPMKEY_VENDOR + 1)
/* A CK_ULONG: a persistent key handle 0x81xxxxxx. Its parent must be the storage key the
 * module uses (the configured `parent`, else the owner's storage primary). */
#define CKA_TPMKEY_PERSISTENT_HANDLE (CKA_TPMKEY_VENDOR + 2)
/* The key's current password, if it has one (bytes; never stored, never readable). */
#define CKA_TPMKEY_KEY_AUTH (CKA_TPMKEY_VENDOR + 3)

#endif /* TPMKEY_PKCS11_H */
