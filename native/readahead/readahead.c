/*
 * Asks the kernel to read a file into the page cache in the background:
 * prefetch(path) opens the file, checks with a non-blocking read (preadv2,
 * RWF_NOWAIT) whether its first byte is cached already, and if not, gives
 * posix_fadvise(POSIX_FADV_WILLNEED), which queues the reads and returns at
 * once. A cold snapshot's reader then finds the data in memory, and the disk
 * has many reads in flight instead of one. Node has no call for either.
 *
 * prefetch(path: Buffer) -> 1 when the start of the file was not cached
 * (reading ahead was asked for), 0 when it was, 2 when the check could not
 * tell (a kernel or file system without non-blocking buffered reads, such as
 * tmpfs: reading ahead was asked for anyway), -1 when the file could not be
 * opened (the snapshot will say why when it reads it). Linux only: the
 * function is not exported elsewhere.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <errno.h>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

static int prefetch_path(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  int answer = 2;
#if defined(RWF_NOWAIT)
  char byte;
  struct iovec iov = { &byte, 1 };
  if (preadv2(fd, &iov, 1, 0, RWF_NOWAIT) >= 0) answer = 0;
  else if (errno == EAGAIN) answer = 1;
#endif
  if (answer != 0) posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  close(fd);
  return answer;
}

static napi_value Prefetch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  size_t length = 0;
  bool is_buffer = false;
  int answer = -1;
  if (argc == 1 && napi_is_buffer(env, argv[0], &is_buffer) == napi_ok && is_buffer &&
      napi_get_buffer_info(env, argv[0], &data, &length) == napi_ok && length > 0 && memchr(data, 0, length) == NULL) {
    char *path = malloc(length + 1);
    if (path != NULL) {
      memcpy(path, data, length);
      path[length] = 0;
      answer = prefetch_path(path);
      free(path);
    }
  }
  napi_value result;
  napi_create_int32(env, answer, &result);
  return result;
}
#endif

static napi_value Init(napi_env env, napi_value exports) {
#if defined(__linux__)
  napi_value fn;
  napi_create_function(env, "prefetch", NAPI_AUTO_LENGTH, Prefetch, NULL, &fn);
  napi_set_named_property(env, exports, "prefetch", fn);
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
