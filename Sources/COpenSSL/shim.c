#include "shim.h"

#include <openssl/core_names.h>
#include <openssl/params.h>

EVP_MAC_CTX *moonhook_hmac_new(const char *digest, const uint8_t *key, size_t key_length) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *context = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);  // the context holds its own reference
    if (context == NULL) return NULL;
    OSSL_PARAM parameters[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0),
        OSSL_PARAM_construct_end(),
    };
    // An empty key is a valid HMAC key; OpenSSL wants a non-NULL pointer for it.
    static const uint8_t empty = 0;
    if (EVP_MAC_init(context, key_length > 0 ? key : &empty, key_length, parameters) != 1) {
        EVP_MAC_CTX_free(context);
        return NULL;
    }
    return context;
}

size_t moonhook_hmac(const EVP_MAC_CTX *keyed, const uint8_t *data, size_t length, uint8_t *output) {
    // A copy of the keyed context: its inner and outer digests start where the key left them.
    EVP_MAC_CTX *context = EVP_MAC_CTX_dup(keyed);
    if (context == NULL) return 0;
    size_t written = 0;
    static const uint8_t empty = 0;
    int ok = EVP_MAC_update(context, length > 0 ? data : &empty, length) == 1
        && EVP_MAC_final(context, output, &written, EVP_MAX_MD_SIZE) == 1;
    EVP_MAC_CTX_free(context);
    return ok ? written : 0;
}
