/*
 * glibc keeps memory freed inside its arenas (block-sized buffers freed by
 * one thread and another) resident until malloc_trim returns it; Node has
 * no call for it. trim() -> true when memory was given back; false where
 * there is no glibc (nothing to do there).
 *
 * discard(buffer) gives back the whole pages inside a buffer that is kept
 * for later but holds nothing worth keeping (madvise MADV_DONTNEED): the
 * buffer stays valid, its pages read as zeros and come back, one page
 * fault each, when written again. For a pool of big buffers kept to be used
 * again (a garbage-collected buffer is freed only when its thread's
 * collector gets to it). -> the bytes given back (0 where there is no
 * madvise, or no whole page inside the buffer).
 */
#include <node_api.h>
#include <stdint.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

static napi_value Trim(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#if defined(__GLIBC__)
  released = malloc_trim(0);
#endif
  napi_value result;
  napi_get_boolean(env, released != 0, &result);
  return result;
}

static napi_value Discard(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  double given = 0;
#if defined(__linux__)
  bool is_typed = false;
  napi_typedarray_type type;
  size_t elements = 0;
  void *data = NULL;
  if (argc == 1 && napi_is_typedarray(env, argv[0], &is_typed) == napi_ok && is_typed &&
      napi_get_typedarray_info(env, argv[0], &type, &elements, &data, NULL, NULL) == napi_ok && type == napi_uint8_array) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)data + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)data + elements) & ~(page - 1);
    if (end > start && madvise((void *)start, end - start, MADV_DONTNEED) == 0) given = (double)(end - start);
  }
#endif
  napi_value result;
  napi_create_double(env, given, &result);
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn);
  napi_set_named_property(env, exports, "trim", fn);
  napi_create_function(env, "discard", NAPI_AUTO_LENGTH, Discard, NULL, &fn);
  napi_set_named_property(env, exports, "discard", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
