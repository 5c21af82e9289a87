//! tpmkey's PKCS#11 module (`libtpmkey_pkcs11.so`): a token whose keys live in the TPM.
//!
//! # Interface
//! Only `C_GetFunctionList` (the 2.40 table), `C_GetInterface` and `C_GetInterfaceList`
//! (the "PKCS 11" interface, 3.0 and 2.40) are exported; a version script (build.rs) keeps
//! every other symbol local, so the module cannot bind to a host's functions of the same
//! name (tpm2-pkcs11's exported internals break strongSwan that way). Every entry point
//! is a short shim in [`ffi`]: pointer checks, `catch_unwind`, a safe function of the
//! group module returning [`error::Result`], the CK_RV. The modules follow the
//! specification's function groups: [`general`], [`slot_token`], [`session`], [`object`],
//! [`key_management`], [`sign_verify`], [`encrypt_decrypt`], [`digest`], [`random`]; an
//! active operation's life (ended by its last call, kept on CKR_BUFFER_TOO_SMALL) is
//! [`operation`].
//!
//! # State
//! One lock over the global state ([`state`]); handles are never reused within a process.
//! C_Initialize honours CKF_OS_LOCKING_OK (the module uses OS locks; caller mutex
//! callbacks alone are CKR_CANT_LOCK) and requires pReserved to be NULL, as the
//! specification says (p11-kit passes NULL unless a module file sets `x-init-reserved`).
//! After fork the child must call C_Initialize, which starts afresh (pid check); the
//! core's TPM connection is likewise per process. C_Finalize flushes what the process
//! holds in the TPM.
//!
//! # Configuration and store
//! The core configuration (`/etc/tpmkey/tpmkey.conf` or `TPMKEY_CONF`, environment
//! `TPMKEY_TCTI`, ...) plus the store directory: `TPMKEY_STORE` > config file `store =` >
//! `/var/lib/tpmkey` for root, `$XDG_DATA_HOME/tpmkey` (or `~/.local/share/tpmkey`)
//! otherwise. Daemons that strip the environment work from the config file alone.
//! The store is `tpmkey::store`: a directory per token, a file per object, key pairs as
//! one record plus a TSS2 PRIVATE KEY file, written atomically under a file lock. A damaged
//! store is never hidden: a token whose description is damaged keeps a slot answering
//! CKR_TOKEN_NOT_RECOGNIZED (never initialised over), a damaged record fails
//! C_FindObjectsInit with CKR_DEVICE_ERROR, each named on standard error
//! ([`error::log`]). After another process re-initialised a token, writes with the old
//! login are CKR_USER_NOT_LOGGED_IN until C_Logout and C_Login.
//!
//! # PINs
//! C_InitToken seals a random 32-byte token secret under an authValue SHA-256(salt || SO
//! PIN) in a DA-protected TPM sealed object whose policy is PolicySecret(the token's SO PIN
//! index) + PolicyAuthValue; C_InitPIN does the same for the user PIN. The PIN indices are
//! TPM_NT_PIN_FAIL NV indices, one per token and role (`tpmkey::store::pin_index`): the TPM
//! counts wrong PINs there, not in its dictionary-attack counter, and refuses at the
//! token's limit (CKR_PIN_INCORRECT, then CKR_PIN_LOCKED). C_Login is PolicySecret,
//! PolicyAuthValue and TPM2_Unseal. The token mirrors the counts per role
//! (`tpmkey::store::pin_state`) for the PIN flags; C_InitPIN by the SO unlocks the user
//! PIN. Tokens made before PIN indices keep the host count and the TPM's lockout. Keys'
//! authValues are HMAC-SHA256(token secret, object id): high entropy, so keys are noDA
//! (using them never counts toward the TPM's lockout; a locked
//! PIN still locks their use, as every key needs the login). C_SetPIN replaces the role's
//! index and PIN object (TPM2_ObjectChangeAuth for tokens without indices). The CKA_VALUE of private data objects and
//! private certificates, of any size, is an envelope: a TPM-sealed AES-256 key and
//! AES-256-GCM over the value and the object's identity (`tpmkey::envelope`).
//!
//! # Importing TPM keys
//! An existing TPM key (a TSS2 PRIVATE KEY file, or a persistent handle whose parent is the
//! storage key the module uses) joins a token through C_CreateObject of a private key with
//! the vendor attributes of `include/tpmkey_pkcs11.h` (see [`key_management::import`]):
//! TPM2_ObjectChangeAuth gives it the token's derived authValue, so the token never stores
//! the key's own password, and the file or persistent object handed in keeps it.
//!
//! # Mechanisms
//! See [`mechanism`]. Signatures and decryption in the TPM (one command per signature
//! once logged in, with the `keep` object policy), verification, encryption and digests
//! in software (pure Rust, nothing re-enters libcrypto).

#![deny(unreachable_pub)]

mod attributes;
mod create_object;
mod digest;
mod encrypt_decrypt;
mod error;
mod ffi;
mod general;
mod key_management;
mod key_ref;
mod mechanism;
mod object;
mod operation;
mod public_key;
mod random;
mod session;
mod sign_mechanism;
mod sign_verify;
mod slot_token;
mod software;
mod state;
