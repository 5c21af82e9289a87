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
 *   CKR_FUNCTION_REJECTED     (0x200) C_Sign, C_Decrypt, C_DeriveKey with a key bound to a
 *                             platform policy the platform state does not satisfy now (see
 *                             below); the operation ends, the session and login stay.
 *   CKR_ATTRIBUTE_SENSITIVE   also: C_GetAttributeValue(CKA_VALUE) of a private data object
 *                             or certificate whose value is bound to a platform policy the
 *                             state does not satisfy (ulValueLen CK_UNAVAILABLE_INFORMATION).
 *
 * Tokens with a platform policy. `tpmkey token init --label L --so-pin SRC [--pin SRC]
 * --pcr sha256:7,16` (current values) or `--pcr-values FILE` (supplied or predicted values)
 * makes a token, as C_InitToken on the empty slot does, whose description in the store
 * records the policy: the TSS2 key file's policy statements (`policy [1]`, DER SEQUENCE OF
 * TPMPolicy, hex on the `platform-policy=` line). PKCS#11 has no way to pass it through
 * C_InitToken; a later C_InitToken of the token (the SO PIN) keeps it.
 *   - C_GenerateKeyPair creates keys with authPolicy = the platform policy AND
 *     PolicyAuthValue, userWithAuth clear: a key needs the PCR values AND the token login
 *     (its authValue, derived from the token secret that the user PIN unseals, goes into
 *     the HMAC of the policy session). C_Sign costs PolicyPCR + PolicyAuthValue + Sign.
 *   - Private data objects and certificates: the key of their value's envelope is sealed
 *     to the same policy AND authValue.
 *   - In another platform state: C_Sign / C_Decrypt / C_DeriveKey CKR_FUNCTION_REJECTED and
 *     CKA_VALUE CKR_ATTRIBUTE_SENSITIVE, each with a log line at level error naming the
 *     policy and the PCRs that differ. No dictionary-attack count is spent (the policy
 *     fails before authorisation). C_GetTokenInfo, C_Login, C_FindObjects and every other
 *     attribute work in any state; after a reboot into the approved state the keys and
 *     values work again.
 *   - Keys brought in with CKA_TPMKEY_KEY_FILE / CKA_TPMKEY_PERSISTENT_HANDLE are refused
 *     (CKR_TEMPLATE_INCONSISTENT): they keep their own policy, so the token could no longer
 *     promise that all its keys need the platform state.
 *   - The policy binds objects made while it is recorded: editing the description later
 *     changes no existing key or value (their policy is in the TPM objects).
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
