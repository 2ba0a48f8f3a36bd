// COpenSSL: the parts of OpenSSL's libcrypto moonhook uses (libssl-dev): one-shot HMAC and SHA-2
// digests, constant-time comparison, random bytes. Nothing here needs wrapping; the header only
// gathers the includes so Swift can import them as one module.
#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#endif
