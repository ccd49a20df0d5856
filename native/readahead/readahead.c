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
 * opened (the snapshot will say why when it reads it).
 *
 * readNowait(fd, buffer, offset, length, position) reads like pread, but
 * only what is in the page cache (preadv2, RWF_NOWAIT): the bytes read
 * (possibly fewer than asked), -2 when nothing at `position` is cached, -1
 * on any other failure (the caller then reads the usual way, which reports
 * it). A reader that must not wait on the disk tries this first.
 *
 * willNeed(fd, position, length) asks the kernel to read that part of an
 * open file into the page cache in the background (posix_fadvise,
 * POSIX_FADV_WILLNEED): 0, or the errno it failed with. A big file's reader
 * keeps the disk busy ahead of it this way: the kernel's own read-ahead is
 * 128 KiB at a time, one window after another.
 *
 * Linux only: the functions are not exported elsewhere.
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

static napi_value ReadNowait(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t answer = -1;
  int32_t fd = -1;
  uint32_t offset = 0, length = 0;
  int64_t position = -1;
  bool is_typed = false;
  napi_typedarray_type type;
  size_t elements = 0;
  void *data = NULL;
  if (argc == 5 && napi_get_value_int32(env, argv[0], &fd) == napi_ok && fd >= 0 &&
      napi_is_typedarray(env, argv[1], &is_typed) == napi_ok && is_typed &&
      napi_get_typedarray_info(env, argv[1], &type, &elements, &data, NULL, NULL) == napi_ok && type == napi_uint8_array &&
      napi_get_value_uint32(env, argv[2], &offset) == napi_ok && napi_get_value_uint32(env, argv[3], &length) == napi_ok &&
      napi_get_value_int64(env, argv[4], &position) == napi_ok && position >= 0 &&
      (size_t)offset <= elements && (size_t)length <= elements - offset) {
#if defined(RWF_NOWAIT)
    struct iovec iov = { (char *)data + offset, length };
    ssize_t n = preadv2(fd, &iov, 1, position, RWF_NOWAIT);
    answer = n >= 0 ? (int64_t)n : errno == EAGAIN ? -2 : -1;
#endif
  }
  napi_value result;
  napi_create_int64(env, answer, &result);
  return result;
}

static napi_value WillNeed(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  int64_t position = -1, length = -1;
  int answer = EINVAL;
  if (argc == 3 && napi_get_value_int32(env, argv[0], &fd) == napi_ok && fd >= 0 &&
      napi_get_value_int64(env, argv[1], &position) == napi_ok && position >= 0 &&
      napi_get_value_int64(env, argv[2], &length) == napi_ok && length > 0) {
    answer = posix_fadvise(fd, (off_t)position, (off_t)length, POSIX_FADV_WILLNEED);
  }
  napi_value result;
  napi_create_int32(env, answer, &result);
  return result;
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
  napi_create_function(env, "readNowait", NAPI_AUTO_LENGTH, ReadNowait, NULL, &fn);
  napi_set_named_property(env, exports, "readNowait", fn);
  napi_create_function(env, "willNeed", NAPI_AUTO_LENGTH, WillNeed, NULL, &fn);
  napi_set_named_property(env, exports, "willNeed", fn);
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
