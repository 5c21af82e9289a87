/*
 * tpmkey OpenSSL provider: parameter names specific to TPM keys, for C applications that
 * generate keys through EVP_PKEY_CTX_set_params() (the same names `openssl genpkey
 * -pkeyopt NAME:VALUE` takes). Licensed under Apache-2.0.
 */
#ifndef TPMKEY_H
#define TPMKEY_H

/* The provider's name: OSSL_PROVIDER_load(libctx, TPMKEY_PROVIDER_NAME). */
#define TPMKEY_PROVIDER_NAME "tpmkey"
/* Property of every tpmkey algorithm, for property queries that want the TPM. */
#define TPMKEY_PROPERTY "provider=tpmkey"

/* Key generation (utf8 strings). */
#define TPMKEY_PKEY_PARAM_USER_AUTH "user-auth"     /* the new key's password */
#define TPMKEY_PKEY_PARAM_PARENT "parent"           /* parent handle, 0x81xxxxxx */
#define TPMKEY_PKEY_PARAM_PARENT_AUTH "parent-auth" /* owner or parent password */
#define TPMKEY_PKEY_PARAM_PERSIST "persist"         /* also store at 0x81xxxxxx */

/*
 * Keys bound to the platform state (utf8 strings; combinable with each other and with
 * user-auth). The key then works only while its policy is satisfied: with a password too,
 * it needs the state AND the password.
 */
#define TPMKEY_PKEY_PARAM_PCR "pcr"                     /* "sha256:7,16": the values now */
#define TPMKEY_PKEY_PARAM_PCR_VALUES "pcr-values"       /* file: "sha256:16=HEX" lines */
#define TPMKEY_PKEY_PARAM_POLICY_SIGNER "policy-signer" /* PEM public key of the signer */
#define TPMKEY_PKEY_PARAM_POLICY_REF "policy-ref"       /* "nonce" (default) or "empty" */

/* The entropy source for the openssl.cnf [random] section: seed = TPM-SEED. */
#define TPMKEY_RAND_SEED "TPM-SEED"

/* Store URIs: "handle:0x81000001", "handle:0x81000001?pass" (asks for a password). */
#define TPMKEY_STORE_SCHEME "handle"

#endif /* TPMKEY_H */
