/*
 * seal(key, nonce, aad, head, payload, out): AES-256-GCM of head then
 * payload (one message), written to out (head.length + payload.length
 * bytes of ciphertext, then the 16-byte tag). Node's cipher returns a
 * fresh buffer for every update; this writes where the caller says, with
 * the OpenSSL that Node itself carries (its symbols are the process's).
 * open is the reverse; the module also exports blockKey (block_key.c).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block_key.h"

static int bytes(napi_env env, napi_value value, unsigned char **data, size_t *length) {
  bool is_typed;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  void *base;
  if (napi_get_typedarray_info(env, value, &type, length, &base, &buffer, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  *data = (unsigned char *)base;
  return 1;
}

/* The six Uint8Array arguments of seal and open; 0 (with a JavaScript error thrown) for anything else. */
static int six_arrays(napi_env env, napi_callback_info info, const char *name, unsigned char *p[6], size_t n[6]) {
  size_t argc = 6;
  napi_value argv[6];
  char message[64];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) {
    snprintf(message, sizeof message, "aes_gcm.%s takes 6 arguments", name);
    napi_throw_error(env, NULL, message);
    return 0;
  }
  for (int i = 0; i < 6; i++) {
    if (!bytes(env, argv[i], &p[i], &n[i])) {
      snprintf(message, sizeof message, "aes_gcm.%s: every argument is a Uint8Array", name);
      napi_throw_type_error(env, NULL, message);
      return 0;
    }
  }
  return 1;
}

/*
 * The cipher is fetched once, and each thread keeps one context for sealing
 * and one for opening, with the key they were last given: a block under the
 * same key only sets its nonce (EVP_CipherInit_ex with no cipher and no
 * key). A context made, fetched and keyed per block cost about 1 us of the
 * 6.5 a small block's seal took, and of the 3 its open took (bench/NOTES.md,
 * "Eighteenth pass"). The keys are wiped when the thread ends.
 */
static EVP_CIPHER *aes_256_gcm = NULL;
static pthread_once_t cipher_once = PTHREAD_ONCE_INIT;
static void fetch_cipher(void) { aes_256_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL); }

typedef struct {
  EVP_CIPHER_CTX *ctx;
  unsigned char key[32];
  int keyed;
} keyed_ctx;

typedef struct {
  keyed_ctx seal;
  keyed_ctx open;
} thread_contexts;

static pthread_key_t contexts_key;
static pthread_once_t contexts_key_once = PTHREAD_ONCE_INIT;

static void free_contexts(void *data) {
  thread_contexts *contexts = data;
  EVP_CIPHER_CTX_free(contexts->seal.ctx);
  EVP_CIPHER_CTX_free(contexts->open.ctx);
  OPENSSL_cleanse(contexts, sizeof *contexts);
  free(contexts);
}

static void make_contexts_key(void) { pthread_key_create(&contexts_key, free_contexts); }

static thread_contexts *this_thread_contexts(void) {
  pthread_once(&contexts_key_once, make_contexts_key);
  thread_contexts *contexts = pthread_getspecific(contexts_key);
  if (contexts != NULL) return contexts;
  contexts = calloc(1, sizeof *contexts);
  if (contexts == NULL) return NULL;
  contexts->seal.ctx = EVP_CIPHER_CTX_new();
  contexts->open.ctx = EVP_CIPHER_CTX_new();
  if (contexts->seal.ctx == NULL || contexts->open.ctx == NULL || pthread_setspecific(contexts_key, contexts) != 0) {
    free_contexts(contexts);
    return NULL;
  }
  return contexts;
}

/*
 * Starts a message under key and nonce on the thread's context for seal (encrypt 1) or open (0):
 * the key schedule is made again only when the key is not the one the context has. NULL when OpenSSL fails.
 */
static EVP_CIPHER_CTX *start_message(int encrypt, const unsigned char *key, const unsigned char *nonce) {
  pthread_once(&cipher_once, fetch_cipher);
  thread_contexts *contexts = aes_256_gcm == NULL ? NULL : this_thread_contexts();
  if (contexts == NULL) return NULL;
  keyed_ctx *keyed = encrypt ? &contexts->seal : &contexts->open;
  int same_key = keyed->keyed && CRYPTO_memcmp(keyed->key, key, 32) == 0;
  keyed->keyed = 0;
  if (EVP_CipherInit_ex(keyed->ctx, same_key ? NULL : aes_256_gcm, NULL, same_key ? NULL : key, nonce, encrypt) != 1) return NULL;
  memcpy(keyed->key, key, 32);
  keyed->keyed = 1;
  return keyed->ctx;
}

static napi_value seal(napi_env env, napi_callback_info info) {
  unsigned char *p[6];
  size_t n[6];
  if (!six_arrays(env, info, "seal", p, n)) return NULL;
  if (n[0] != 32 || n[1] != 12 || n[5] < n[3] + n[4] + 16 || n[3] > 0x7fffffff || n[4] > 0x7fffffff || n[2] > 0x7fffffff) {
    napi_throw_range_error(env, NULL, "aes_gcm.seal: a 32-byte key, a 12-byte nonce, and room for the ciphertext and tag");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = start_message(1, p[0], p[1]);
  int ok = ctx != NULL;
  int written = 0;
  unsigned char *out = p[5];
  ok = ok && (n[2] == 0 || EVP_EncryptUpdate(ctx, NULL, &written, p[2], (int)n[2]) == 1);
  /* The associated data's update counts its own length: nothing of it is output. */
  written = 0;
  ok = ok && (n[3] == 0 || EVP_EncryptUpdate(ctx, out, &written, p[3], (int)n[3]) == 1);
  out += ok ? written : 0;
  ok = ok && (n[4] == 0 || EVP_EncryptUpdate(ctx, out, &written, p[4], (int)n[4]) == 1);
  out += ok && n[4] != 0 ? written : 0;
  ok = ok && EVP_EncryptFinal_ex(ctx, out, &written) == 1;
  out += ok ? written : 0;
  ok = ok && (size_t)(out - p[5]) == n[3] + n[4];
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out) == 1;
  if (!ok) { napi_throw_error(env, NULL, "aes_gcm.seal: OpenSSL failed"); return NULL; }
  return NULL;
}

/*
 * open(key, nonce, aad, ciphertext, tag, out) -> whether the tag is right:
 * AES-256-GCM of ciphertext decrypted into out (at least as long). When it
 * says false, out holds bytes that must not be used. Node's decipher is an
 * object and a fresh buffer per call; a restore opens one per block.
 */
static napi_value open_sealed(napi_env env, napi_callback_info info) {
  unsigned char *p[6];
  size_t n[6];
  if (!six_arrays(env, info, "open", p, n)) return NULL;
  if (n[0] != 32 || n[1] != 12 || n[4] != 16 || n[5] < n[3] || n[3] > 0x7fffffff || n[2] > 0x7fffffff) {
    napi_throw_range_error(env, NULL, "aes_gcm.open: a 32-byte key, a 12-byte nonce, a 16-byte tag, and room for the plaintext");
    return NULL;
  }
  EVP_CIPHER_CTX *ctx = start_message(0, p[0], p[1]);
  int ok = ctx != NULL;
  int written = 0;
  ok = ok && (n[2] == 0 || EVP_DecryptUpdate(ctx, NULL, &written, p[2], (int)n[2]) == 1);
  ok = ok && (n[3] == 0 || EVP_DecryptUpdate(ctx, p[5], &written, p[3], (int)n[3]) == 1);
  ok = ok && (n[3] == 0 || (size_t)written == n[3]);
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, p[4]) == 1;
  /* GCM writes nothing at the end: the final call only checks the tag. */
  int authentic = ok && EVP_DecryptFinal_ex(ctx, p[5] + n[3], &written) == 1;
  if (!ok) { napi_throw_error(env, NULL, "aes_gcm.open: OpenSSL failed"); return NULL; }
  napi_value result;
  if (napi_get_boolean(env, authentic, &result) != napi_ok) return NULL;
  return result;
}

/*
 * The module stays loaded for good once loaded. Node unloads an addon when
 * the last thread that loaded it ends (a worker that alone used it, say),
 * but the per-thread contexts here and in block_key.c are freed at thread
 * exit by destructors in this library: the process crashed when a thread
 * ended after the library was gone.
 */
static pthread_once_t pin_once = PTHREAD_ONCE_INIT;
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)pin_library, &info) != 0 && info.dli_fname != NULL) dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static napi_value init(napi_env env, napi_value exports) {
  pthread_once(&pin_once, pin_library);
  napi_value fn;
  if (napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "seal", fn) != napi_ok) return NULL;
  if (napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_sealed, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "open", fn) != napi_ok) return NULL;
  if (!register_block_key(env, exports)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
