/*
 * blockKey(hashKey, type, data) -> hex string: HMAC-SHA256 under hashKey of
 * the type byte then data, as src/archive/block-codec.ts's blockKey computes
 * with createHmac (tests compare the two). Node's Hmac is an object per call
 * (4-6 us for a small block, 34,000 of them on the bench tree, plus the
 * collector's work for each); this is two digests with a SHA-256 fetched
 * once, in a context kept per thread, with the OpenSSL Node carries.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#include "block_key.h"

#define SHA256_BLOCK 64
#define SHA256_BYTES 32

static EVP_MD *sha256 = NULL;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void fetch_sha256(void) { sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); }

/* A digest context per thread (the main thread and each worker call this), freed with the thread. */
static pthread_key_t ctx_key;
static pthread_once_t ctx_key_once = PTHREAD_ONCE_INIT;
static void free_ctx(void *ctx) { EVP_MD_CTX_free((EVP_MD_CTX *)ctx); }
static void make_ctx_key(void) { pthread_key_create(&ctx_key, free_ctx); }

static EVP_MD_CTX *thread_ctx(void) {
  pthread_once(&ctx_key_once, make_ctx_key);
  EVP_MD_CTX *ctx = pthread_getspecific(ctx_key);
  if (ctx == NULL) {
    ctx = EVP_MD_CTX_new();
    if (ctx != NULL) pthread_setspecific(ctx_key, ctx);
  }
  return ctx;
}

static int bytes_of(napi_env env, napi_value value, const unsigned char **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *base = NULL;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  if (napi_get_typedarray_info(env, value, &type, length, &base, NULL, NULL) != napi_ok || type != napi_uint8_array) return 0;
  *data = (const unsigned char *)base;
  return 1;
}

/* HMAC (RFC 2104) with a key of at most one SHA-256 block: H(K ^ opad || H(K ^ ipad || type || data)). */
static int hmac_sha256(EVP_MD_CTX *ctx, const unsigned char *key, size_t key_length, unsigned char type,
                       const unsigned char *data, size_t length, unsigned char out[SHA256_BYTES]) {
  unsigned char pad[SHA256_BLOCK];
  unsigned char inner[SHA256_BYTES];
  unsigned int written = 0;
  memset(pad, 0x36, sizeof pad);
  for (size_t i = 0; i < key_length; i++) pad[i] ^= key[i];
  int ok = EVP_DigestInit_ex(ctx, sha256, NULL) == 1 && EVP_DigestUpdate(ctx, pad, sizeof pad) == 1 &&
           EVP_DigestUpdate(ctx, &type, 1) == 1 && (length == 0 || EVP_DigestUpdate(ctx, data, length) == 1) &&
           EVP_DigestFinal_ex(ctx, inner, &written) == 1 && written == SHA256_BYTES;
  memset(pad, 0x5c, sizeof pad);
  for (size_t i = 0; i < key_length; i++) pad[i] ^= key[i];
  ok = ok && EVP_DigestInit_ex(ctx, sha256, NULL) == 1 && EVP_DigestUpdate(ctx, pad, sizeof pad) == 1 &&
       EVP_DigestUpdate(ctx, inner, sizeof inner) == 1 && EVP_DigestFinal_ex(ctx, out, &written) == 1 && written == SHA256_BYTES;
  memset(pad, 0, sizeof pad);
  return ok;
}

static napi_value block_key(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  const unsigned char *key = NULL, *data = NULL;
  size_t key_length = 0, length = 0;
  uint32_t type = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 ||
      !bytes_of(env, argv[0], &key, &key_length) || napi_get_value_uint32(env, argv[1], &type) != napi_ok ||
      !bytes_of(env, argv[2], &data, &length)) {
    napi_throw_type_error(env, NULL, "blockKey(hashKey: Uint8Array, type: number, data: Uint8Array)");
    return NULL;
  }
  if (key_length > SHA256_BLOCK || type > 255) {
    napi_throw_range_error(env, NULL, "blockKey: a key of at most 64 bytes and a type of one byte");
    return NULL;
  }
  pthread_once(&sha256_once, fetch_sha256);
  EVP_MD_CTX *ctx = thread_ctx();
  unsigned char digest[SHA256_BYTES];
  if (sha256 == NULL || ctx == NULL || !hmac_sha256(ctx, key, key_length, (unsigned char)type, data, length, digest)) {
    napi_throw_error(env, NULL, "blockKey: OpenSSL failed");
    return NULL;
  }
  static const char hex[] = "0123456789abcdef";
  char text[SHA256_BYTES * 2];
  for (int i = 0; i < SHA256_BYTES; i++) {
    text[2 * i] = hex[digest[i] >> 4];
    text[2 * i + 1] = hex[digest[i] & 15];
  }
  napi_value result;
  if (napi_create_string_latin1(env, text, sizeof text, &result) != napi_ok) return NULL;
  return result;
}

int register_block_key(napi_env env, napi_value exports) {
  napi_value fn;
  return napi_create_function(env, "blockKey", NAPI_AUTO_LENGTH, block_key, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, "blockKey", fn) == napi_ok;
}
