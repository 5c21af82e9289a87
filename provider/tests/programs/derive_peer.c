/* An application deriving an ECDH secret with a TPM key and a software peer that is a full
 * key pair (EVP_PKEY_derive_set_peer with the private key present), as programs that keep
 * both halves of the peer do.
 * usage: derive_peer <modules dir> tpmkey-first|default-first <tpm key> <peer key pair> <out>
 */
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

static EVP_PKEY *read_key(const char *path)
{
    EVP_PKEY *key = NULL;
    BIO *in = BIO_new_file(path, "r");

    if (in != NULL)
        key = PEM_read_bio_PrivateKey_ex(in, NULL, NULL, NULL, NULL, NULL);
    BIO_free(in);
    if (key == NULL)
        fprintf(stderr, "cannot read %s\n", path);
    return key;
}

int main(int argc, char **argv)
{
    const char *first, *second;
    EVP_PKEY *key, *peer;
    EVP_PKEY_CTX *ctx = NULL;
    unsigned char secret[128];
    size_t len = sizeof(secret);
    FILE *out;

    if (argc != 6) {
        fprintf(stderr, "usage: %s modules order key peer out\n", argv[0]);
        return 2;
    }
    first = strcmp(argv[2], "tpmkey-first") == 0 ? "tpmkey" : "default";
    second = strcmp(first, "tpmkey") == 0 ? "default" : "tpmkey";
    if (!OSSL_PROVIDER_set_default_search_path(NULL, argv[1])
        || OSSL_PROVIDER_load(NULL, first) == NULL
        || OSSL_PROVIDER_load(NULL, second) == NULL)
        goto err;
    key = read_key(argv[3]);
    peer = read_key(argv[4]);
    if (key == NULL || peer == NULL)
        goto err;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (ctx == NULL || EVP_PKEY_derive_init(ctx) <= 0
        || EVP_PKEY_derive_set_peer(ctx, peer) <= 0
        || EVP_PKEY_derive(ctx, secret, &len) <= 0)
        goto err;
    out = fopen(argv[5], "wb");
    if (out == NULL || fwrite(secret, 1, len, out) != len || fclose(out) != 0)
        goto err;
    return 0;
err:
    ERR_print_errors_fp(stderr);
    return 1;
}
