// COpenSSL: the parts of OpenSSL's libcrypto moonhook uses (libssl-dev): one-shot HMAC and SHA-2
// digests, constant-time comparison, random bytes, and a keyed HMAC made once per secret
// (`moonhook_hmac_*`, in shim.c).
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

/// An HMAC context holding `key`, for the digest named `digest` ("SHA256", ...); NULL on failure.
/// Made once per secret: `HMAC()` fetches the algorithm from OpenSSL's provider store and hashes
/// the key's pads again on every call, which costs about as much as hashing a small body.
EVP_MAC_CTX *moonhook_hmac_new(const char *digest, const uint8_t *key, size_t key_length);

/// The HMAC of `data` under the key of `keyed` (a context from moonhook_hmac_new, only read: any
/// number of threads may use it at once) into `output` (at least EVP_MAX_MD_SIZE bytes). Returns
/// the MAC's length, or 0 on failure.
size_t moonhook_hmac(const EVP_MAC_CTX *keyed, const uint8_t *data, size_t length, uint8_t *output);

#endif
