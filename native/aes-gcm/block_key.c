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
#include <stdint.h>
#include <stdlib.h>
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

static void to_hex(const unsigned char digest[SHA256_BYTES], char text[SHA256_BYTES * 2]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < SHA256_BYTES; i++) {
    text[2 * i] = hex[digest[i] >> 4];
    text[2 * i + 1] = hex[digest[i] & 15];
  }
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
  char text[SHA256_BYTES * 2];
  to_hex(digest, text);
  napi_value result;
  if (napi_create_string_latin1(env, text, sizeof text, &result) != napi_ok) return NULL;
  return result;
}

/*
 * Chunks [from, to) of a run of consecutive chunks, named into digests (32
 * bytes each) with `ctx` (NULL: a context of its own, for a helper thread);
 * ok is 0 if OpenSSL failed.
 */
struct naming {
  EVP_MD_CTX *ctx;
  const unsigned char *key;
  size_t key_length;
  unsigned char type;
  const unsigned char *data;
  const size_t *starts;
  const uint32_t *lengths;
  size_t from, to;
  unsigned char *digests;
  int ok;
};

static void *name_chunks(void *arg) {
  struct naming *n = arg;
  EVP_MD_CTX *ctx = n->ctx != NULL ? n->ctx : EVP_MD_CTX_new();
  n->ok = ctx != NULL;
  for (size_t i = n->from; i < n->to && n->ok; i++) {
    n->ok = hmac_sha256(ctx, n->key, n->key_length, n->type, n->data + n->starts[i], n->lengths[i], n->digests + SHA256_BYTES * i);
  }
  if (n->ctx == NULL) EVP_MD_CTX_free(ctx);
  return NULL;
}

/* Below this many bytes the chunks are named on the calling thread alone: a thread's start costs more than it saves. */
#define PARALLEL_BYTES (1024 * 1024)

/*
 * blockKeys(hashKey, type, data, lengths) -> hex strings: blockKey of each
 * of the consecutive chunks that make up the start of data (lengths a
 * Uint32Array). From PARALLEL_BYTES on, a second thread names the chunks
 * of the second half of the bytes while this one names the first: a block
 * worker naming a big file's window uses a core the rest of the snapshot
 * has left idle, where there is one (bench/NOTES.md, "Twentieth pass").
 */
static napi_value block_keys(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  const unsigned char *key = NULL, *data = NULL;
  size_t key_length = 0, length = 0, count = 0;
  uint32_t type = 0;
  bool is_typed = false;
  napi_typedarray_type array_type;
  void *lengths_base = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4 ||
      !bytes_of(env, argv[0], &key, &key_length) || napi_get_value_uint32(env, argv[1], &type) != napi_ok ||
      !bytes_of(env, argv[2], &data, &length) || napi_is_typedarray(env, argv[3], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[3], &array_type, &count, &lengths_base, NULL, NULL) != napi_ok ||
      array_type != napi_uint32_array) {
    napi_throw_type_error(env, NULL, "blockKeys(hashKey: Uint8Array, type: number, data: Uint8Array, lengths: Uint32Array)");
    return NULL;
  }
  if (key_length > SHA256_BLOCK || type > 255) {
    napi_throw_range_error(env, NULL, "blockKeys: a key of at most 64 bytes and a type of one byte");
    return NULL;
  }
  const uint32_t *lengths = lengths_base;
  size_t *starts = malloc((count == 0 ? 1 : count) * sizeof(size_t));
  unsigned char *digests = malloc((count == 0 ? 1 : count) * SHA256_BYTES);
  if (starts == NULL || digests == NULL) {
    free(starts);
    free(digests);
    napi_throw_error(env, NULL, "blockKeys: out of memory");
    return NULL;
  }
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    starts[i] = total;
    total += lengths[i];
  }
  if (total > length) {
    free(starts);
    free(digests);
    napi_throw_range_error(env, NULL, "blockKeys: the lengths add up to more than the data");
    return NULL;
  }
  pthread_once(&sha256_once, fetch_sha256);
  /* The second thread takes the chunks from the one that starts at or after half the bytes. */
  size_t split = count;
  if (total >= PARALLEL_BYTES) {
    split = 0;
    while (split < count && starts[split] < total / 2) split++;
  }
  /* This thread names with its kept context (as blockKey does; NULL: name_chunks makes one); a helper thread makes its own. */
  EVP_MD_CTX *ctx = thread_ctx();
  struct naming first = {ctx, key, key_length, (unsigned char)type, data, starts, lengths, 0, split, digests, 1};
  struct naming second = {NULL, key, key_length, (unsigned char)type, data, starts, lengths, split, count, digests, 1};
  pthread_t helper;
  int helped = split > 0 && split < count && pthread_create(&helper, NULL, name_chunks, &second) == 0;
  if (!helped) first.to = count;
  name_chunks(&first);
  if (helped) pthread_join(helper, NULL);
  int ok = sha256 != NULL && first.ok && (!helped || second.ok);
  free(starts);
  napi_value result = NULL;
  if (!ok) {
    napi_throw_error(env, NULL, "blockKeys: OpenSSL failed");
  } else if (napi_create_array_with_length(env, count, &result) == napi_ok) {
    char text[SHA256_BYTES * 2];
    for (size_t i = 0; i < count && result != NULL; i++) {
      napi_value item;
      to_hex(digests + SHA256_BYTES * i, text);
      if (napi_create_string_latin1(env, text, sizeof text, &item) != napi_ok || napi_set_element(env, result, (uint32_t)i, item) != napi_ok) result = NULL;
    }
  }
  free(digests);
  return result;
}

int register_block_key(napi_env env, napi_value exports) {
  napi_value fn, many;
  return napi_create_function(env, "blockKey", NAPI_AUTO_LENGTH, block_key, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, "blockKey", fn) == napi_ok &&
         napi_create_function(env, "blockKeys", NAPI_AUTO_LENGTH, block_keys, NULL, &many) == napi_ok &&
         napi_set_named_property(env, exports, "blockKeys", many) == napi_ok;
}
