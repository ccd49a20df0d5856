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
 * prefetchMany(paths: Buffer, sizes: Uint32Array, answers: Int8Array) does
 * what prefetch does for each of several files at once: `paths` holds them
 * one after another, each ended by a zero byte, `sizes` their sizes (the
 * caller's lstat), and each file's answer (as prefetch's) goes into
 * `answers`. Where io_uring can be used, each file is opened here and its
 * first 64 KiB read without waiting (RWF_NOWAIT) in one submission for the
 * batch: a read of an uncached file has the kernel start reading it ahead
 * and answers EAGAIN at once, and the reads of the whole batch reach the
 * disk together, merged where the files lie side by side. One file at a
 * time, each read was a request of its own and a notification of the disk
 * (a costly exit from a virtual machine): the bench tree's 33,200 small
 * files cost 1.17-1.29 s of CPU and 35,000-37,000 reads, in batches of 32
 * 0.35-0.44 s and 5,400 (bench/NOTES.md, "Twenty-first pass"). An uncached
 * file longer than what the read asks for gets posix_fadvise(WILLNEED) for
 * the rest. Where io_uring cannot be set up (an old kernel, a seccomp
 * filter, kernel.io_uring_disabled) or CAIRN_NO_IO_URING=1 is set, each
 * file goes through prefetch's way.
 * Returns how many files were answered (-1 for bad arguments).
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
#if defined(__has_include)
#if __has_include(<linux/io_uring.h>)
#include <linux/io_uring.h>
#endif
#endif
#if defined(IORING_FEAT_RW_CUR_POS) && defined(RWF_NOWAIT)
#define HAVE_URING 1
#include <sys/mman.h>
#include <sys/syscall.h>
#endif

static int open_for_prefetch(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  return fd;
}

/* prefetch's answer for an open file: a one-byte read without waiting tells whether it is cached; if not, WILLNEED. */
static int prefetch_fd(int fd) {
  int answer = 2;
#if defined(RWF_NOWAIT)
  char byte;
  struct iovec iov = { &byte, 1 };
  if (preadv2(fd, &iov, 1, 0, RWF_NOWAIT) >= 0) answer = 0;
  else if (errno == EAGAIN) answer = 1;
#endif
  if (answer != 0) posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
  return answer;
}

static int prefetch_path(const char *path) {
  int fd = open_for_prefetch(path);
  if (fd < 0) return -1;
  int answer = prefetch_fd(fd);
  close(fd);
  return answer;
}

/* What prefetchMany reads of each file, and the most files in one submission. */
#define MANY_READ_BYTES (64 * 1024)
#define RING_ENTRIES 64

#if defined(HAVE_URING)
/*
 * One ring for each thread that loads the module (its napi_env's instance
 * data, closed with it). `fd` -1: not set up yet; -2: io_uring cannot be
 * used here. The reads all go into one scratch buffer: only their side
 * effect (the page cache filled) is wanted.
 */
typedef struct {
  int fd;
  unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map, *sqe_map;
  size_t sq_size, cq_size, sqe_size;
  char *scratch;
} Ring;

static void ring_close(Ring *ring) {
  if (ring->sqe_map != NULL) munmap(ring->sqe_map, ring->sqe_size);
  if (ring->cq_map != NULL && ring->cq_map != ring->sq_map) munmap(ring->cq_map, ring->cq_size);
  if (ring->sq_map != NULL) munmap(ring->sq_map, ring->sq_size);
  if (ring->fd >= 0) close(ring->fd);
  free(ring->scratch);
  memset(ring, 0, sizeof *ring);
  ring->fd = -2;
}

static void ring_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Ring *ring = data;
  if (ring->fd != -2) ring_close(ring);
  free(ring);
}

static bool ring_setup(Ring *ring) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  /* CAIRN_NO_IO_URING=1: one file at a time, as where io_uring cannot be used (tests run both ways). */
  const char *refused = getenv("CAIRN_NO_IO_URING");
  ring->fd = refused != NULL && strcmp(refused, "1") == 0 ? -1 : (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &params);
  if (ring->fd < 0) {
    ring->fd = -2;
    return false;
  }
  ring->sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
  ring->cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
  bool single = (params.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && ring->cq_size > ring->sq_size) ring->sq_size = ring->cq_size;
  ring->sqe_size = params.sq_entries * sizeof(struct io_uring_sqe);
  void *sq = mmap(NULL, ring->sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring->fd, IORING_OFF_SQ_RING);
  if (sq == MAP_FAILED) goto failed;
  ring->sq_map = sq;
  void *cq = sq;
  if (!single) {
    cq = mmap(NULL, ring->cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring->fd, IORING_OFF_CQ_RING);
    if (cq == MAP_FAILED) goto failed;
  }
  ring->cq_map = cq;
  void *sqes = mmap(NULL, ring->sqe_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring->fd, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) goto failed;
  ring->sqe_map = sqes;
  ring->sqes = sqes;
  ring->sq_tail = (unsigned *)((char *)sq + params.sq_off.tail);
  ring->sq_mask = (unsigned *)((char *)sq + params.sq_off.ring_mask);
  ring->sq_array = (unsigned *)((char *)sq + params.sq_off.array);
  ring->cq_head = (unsigned *)((char *)cq + params.cq_off.head);
  ring->cq_tail = (unsigned *)((char *)cq + params.cq_off.tail);
  ring->cq_mask = (unsigned *)((char *)cq + params.cq_off.ring_mask);
  ring->cqes = (struct io_uring_cqe *)((char *)cq + params.cq_off.cqes);
  ring->scratch = malloc(MANY_READ_BYTES);
  if (ring->scratch == NULL) goto failed;
  return true;
failed:
  ring_close(ring);
  return false;
}

/*
 * Submits one read for each of `count` open files (fds[i], answers[i] set
 * from its completion: 0 cached, 1 not, 2 the read could not tell) and waits
 * for all of them (a read without waiting completes during its submission).
 * False when the ring failed: it is closed, and the answers not set are -3.
 */
static bool ring_prefetch(Ring *ring, const int *fds, const uint32_t *sizes, int8_t *answers, unsigned count) {
  unsigned tail = *ring->sq_tail;
  for (unsigned i = 0; i < count; i += 1) {
    answers[i] = -3;
    unsigned index = (tail + i) & *ring->sq_mask;
    struct io_uring_sqe *sqe = &ring->sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = IORING_OP_READ;
    sqe->fd = fds[i];
    sqe->addr = (uint64_t)(uintptr_t)ring->scratch;
    sqe->len = sizes[i] < MANY_READ_BYTES ? sizes[i] : MANY_READ_BYTES;
    sqe->off = 0;
    sqe->rw_flags = RWF_NOWAIT;
    sqe->user_data = i;
    ring->sq_array[index] = index;
  }
  __atomic_store_n(ring->sq_tail, tail + count, __ATOMIC_RELEASE);
  unsigned submitted = 0, completed = 0;
  while (completed < count) {
    int entered = (int)syscall(__NR_io_uring_enter, ring->fd, count - submitted, count - completed, IORING_ENTER_GETEVENTS, NULL, 0);
    if (entered < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) {
      ring_close(ring);
      return false;
    }
    if (entered > 0) submitted += (unsigned)entered;
    unsigned head = *ring->cq_head;
    unsigned ready = __atomic_load_n(ring->cq_tail, __ATOMIC_ACQUIRE);
    for (; head != ready; head += 1) {
      struct io_uring_cqe *cqe = &ring->cqes[head & *ring->cq_mask];
      if (cqe->user_data < count) answers[cqe->user_data] = cqe->res >= 0 ? 0 : cqe->res == -EAGAIN ? 1 : 2;
      completed += 1;
    }
    __atomic_store_n(ring->cq_head, head, __ATOMIC_RELEASE);
  }
  return true;
}
#endif

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

static napi_value PrefetchMany(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *paths = NULL;
  size_t length = 0, sizes_count = 0, answers_count = 0;
  void *sizes_data = NULL, *answers_data = NULL;
  bool is_buffer = false, is_typed = false;
  napi_typedarray_type type;
  int64_t done = -1;
  if (argc == 3 && napi_is_buffer(env, argv[0], &is_buffer) == napi_ok && is_buffer &&
      napi_get_buffer_info(env, argv[0], (void **)&paths, &length) == napi_ok &&
      napi_is_typedarray(env, argv[1], &is_typed) == napi_ok && is_typed &&
      napi_get_typedarray_info(env, argv[1], &type, &sizes_count, &sizes_data, NULL, NULL) == napi_ok && type == napi_uint32_array &&
      napi_is_typedarray(env, argv[2], &is_typed) == napi_ok && is_typed &&
      napi_get_typedarray_info(env, argv[2], &type, &answers_count, &answers_data, NULL, NULL) == napi_ok && type == napi_int8_array &&
      answers_count >= sizes_count && (length == 0 || paths[length - 1] == 0)) {
    const uint32_t *sizes = sizes_data;
    int8_t *answers = answers_data;
    const char *names[RING_ENTRIES];
    int fds[RING_ENTRIES];
    uint32_t batch_sizes[RING_ENTRIES];
    int8_t batch_answers[RING_ENTRIES];
    size_t at = 0;
    done = 0;
#if defined(HAVE_URING)
    Ring *ring = NULL;
    if (napi_get_instance_data(env, (void **)&ring) != napi_ok) ring = NULL;
    if (ring == NULL && (ring = calloc(1, sizeof *ring)) != NULL) {
      ring->fd = -1;
      if (napi_set_instance_data(env, ring, ring_finalize, NULL) != napi_ok) {
        free(ring);
        ring = NULL;
      }
    }
    if (ring != NULL && ring->fd == -1) ring_setup(ring);
#endif
    while (at < length && (size_t)done < sizes_count) {
      unsigned count = 0;
      for (; count < RING_ENTRIES && at < length && (size_t)done + count < sizes_count; count += 1) {
        names[count] = paths + at;
        at += strlen(paths + at) + 1;
      }
      unsigned opened = 0;
      int index_of[RING_ENTRIES];
      for (unsigned i = 0; i < count; i += 1) {
        int fd = open_for_prefetch(names[i]);
        answers[done + i] = -1;
        if (fd < 0) continue;
        index_of[opened] = (int)i;
        fds[opened] = fd;
        batch_sizes[opened] = sizes[done + i];
        opened += 1;
      }
      bool rung = false;
#if defined(HAVE_URING)
      rung = ring != NULL && ring->fd >= 0 && opened > 0 && ring_prefetch(ring, fds, batch_sizes, batch_answers, opened);
#endif
      for (unsigned k = 0; k < opened; k += 1) {
        int answer = rung ? batch_answers[k] : -3;
        if (answer == -3) {
          /* No ring (or it failed): prefetch's way, on the descriptor open already. */
          answer = prefetch_fd(fds[k]);
        } else if (answer == 2 || (answer == 1 && batch_sizes[k] > MANY_READ_BYTES)) {
          posix_fadvise(fds[k], answer == 2 ? 0 : MANY_READ_BYTES, 0, POSIX_FADV_WILLNEED);
        }
        answers[done + index_of[k]] = (int8_t)answer;
        close(fds[k]);
      }
      done += count;
    }
  }
  napi_value result;
  napi_create_int64(env, done, &result);
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
  napi_create_function(env, "prefetchMany", NAPI_AUTO_LENGTH, PrefetchMany, NULL, &fn);
  napi_set_named_property(env, exports, "prefetchMany", fn);
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
