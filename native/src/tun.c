/*
 * Sluice's TUN I/O: open a TUN device with a virtio-net header, read packets in batches into
 * one shared buffer (one JS call per batch), write packets. Nothing here looks inside a packet:
 * parsing, NAT and checksums live in TypeScript (src/dataplane/packet).
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <uv.h>

#define CHECK(env, call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), NULL, "sluice_tun: " #call); \
      return NULL;                                         \
    }                                                      \
  } while (0)

/* Throws an Error whose code is the errno name, so TypeScript can explain EPERM and ENOENT. */
static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *code = err == EPERM ? "EPERM"
                     : err == EACCES ? "EACCES"
                     : err == ENOENT ? "ENOENT"
                     : err == EBUSY ? "EBUSY"
                     : err == EINVAL ? "EINVAL"
                     : "EIO";
  napi_throw_error(env, code, msg);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "sluice_tun: missing arguments");
    return 0;
  }
  return 1;
}

/* open(name, vnetHdr, offload) -> { fd, name } */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char name[IFNAMSIZ];
  size_t len = 0;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len));
  bool vnet = false;
  CHECK(env, napi_get_value_bool(env, argv[1], &vnet));
  uint32_t offload = 0;
  CHECK(env, napi_get_value_uint32(env, argv[2], &offload));

  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, len < IFNAMSIZ ? len : IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "TUNSETIFF", err);
  }
  if (vnet) {
    int hdr = 10; /* struct virtio_net_hdr, without num_buffers */
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
      int err = errno;
      close(fd);
      return throw_errno(env, "TUNSETVNETHDRSZ", err);
    }
  }
  /* Always set: offload flags stick to a device across opens. */
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(vnet ? offload : 0)) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "TUNSETOFFLOAD", err);
  }
  napi_value out, v;
  CHECK(env, napi_create_object(env, &out));
  CHECK(env, napi_create_int32(env, fd, &v));
  CHECK(env, napi_set_named_property(env, out, "fd", v));
  CHECK(env, napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &v));
  CHECK(env, napi_set_named_property(env, out, "name", v));
  return out;
}

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_ref buffer;
  napi_ref lengths;
  napi_async_context async;
  uint8_t *base;
  size_t slot;
  int32_t *lens;
  uint32_t max_batch;
  /* After a batch, go on reading without sleeping for this long (0: return to the loop). */
  uint64_t busy_poll_ns;
  int fd;
  int stopped;
} reader_t;

/* Longest one wake-up may keep the event loop while packets keep coming or it busy-polls. */
#define MAX_TURN_NS 1000000ULL

/* Reads up to a batch into the slots; returns how many slots were filled (0: nothing there). */
static uint32_t read_batch(reader_t *r) {
  uint32_t n = 0;
  while (n < r->max_batch) {
    ssize_t got = read(r->fd, r->base + (size_t)n * r->slot, r->slot);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      /* Reported in place of a length; the reader goes on. */
      r->lens[n++] = -errno;
      break;
    }
    r->lens[n++] = (int32_t)got;
  }
  return n;
}

/* Hands a batch of n slots to JavaScript. */
static void deliver(reader_t *r, uint32_t n) {
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, global, count, result;
  if (napi_get_reference_value(env, r->callback, &cb) == napi_ok && cb != NULL &&
      napi_get_global(env, &global) == napi_ok && napi_create_uint32(env, n, &count) == napi_ok) {
    /* An undefined receiver makes napi_make_callback throw: pass the global object. */
    napi_status s = napi_make_callback(env, r->async, global, cb, 1, &count, &result);
    if (s == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  reader_t *r = (reader_t *)handle->data;
  if (r->stopped) return;
  if (status != 0) {
    r->lens[0] = status < 0 ? status : -EIO;
    deliver(r, 1);
    return;
  }
  uint32_t n = read_batch(r);
  if (n == 0) return;
  deliver(r, n);
  if (r->busy_poll_ns == 0) return;
  /* Busy polling: the answer to what was just forwarded usually comes within tens of
     microseconds; reading it without going back to sleep saves the wake-up's latency. */
  uint64_t start = uv_hrtime();
  uint64_t last = start;
  for (;;) {
    if (r->stopped) return;
    uint64_t now = uv_hrtime();
    if (now - last >= r->busy_poll_ns || now - start >= MAX_TURN_NS) return;
    n = read_batch(r);
    if (n == 0) continue;
    deliver(r, n);
    last = uv_hrtime();
  }
}

static void on_closed(uv_handle_t *handle) {
  reader_t *r = (reader_t *)handle->data;
  napi_delete_reference(r->env, r->callback);
  napi_delete_reference(r->env, r->buffer);
  napi_delete_reference(r->env, r->lengths);
  napi_async_destroy(r->env, r->async);
  free(r);
}

static void reader_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
}

/* startReader(fd, buffer, slotSize, maxBatch, lengths: Int32Array, callback(count),
   busyPollMicros) -> handle */
static napi_value tun_start_reader(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  if (!get_args(env, info, 7, argv)) return NULL;
  uint32_t busy_poll_us;
  CHECK(env, napi_get_value_uint32(env, argv[6], &busy_poll_us));
  int32_t fd;
  uint32_t slot, max_batch;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  void *base;
  size_t blen;
  CHECK(env, napi_get_buffer_info(env, argv[1], &base, &blen));
  CHECK(env, napi_get_value_uint32(env, argv[2], &slot));
  CHECK(env, napi_get_value_uint32(env, argv[3], &max_batch));
  napi_typedarray_type type;
  size_t llen;
  void *ldata;
  napi_value lbuf;
  size_t loff;
  CHECK(env, napi_get_typedarray_info(env, argv[4], &type, &llen, &ldata, &lbuf, &loff));
  if (type != napi_int32_array || llen < max_batch || (size_t)slot * max_batch > blen || slot == 0) {
    napi_throw_range_error(env, NULL, "sluice_tun: buffer or lengths too small for the batch");
    return NULL;
  }
  reader_t *r = calloc(1, sizeof *r);
  if (r == NULL) return throw_errno(env, "startReader", ENOMEM);
  r->env = env;
  r->base = base;
  r->slot = slot;
  r->max_batch = max_batch;
  r->busy_poll_ns = (uint64_t)busy_poll_us * 1000ULL;
  r->lens = ldata;
  r->fd = fd;
  napi_value name;
  CHECK(env, napi_create_string_utf8(env, "sluice:tun", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_async_init(env, NULL, name, &r->async));
  CHECK(env, napi_create_reference(env, argv[5], 1, &r->callback));
  CHECK(env, napi_create_reference(env, argv[1], 1, &r->buffer));
  CHECK(env, napi_create_reference(env, argv[4], 1, &r->lengths));
  uv_loop_t *loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc == 0) {
    r->poll.data = r;
    rc = uv_poll_start(&r->poll, UV_READABLE, on_readable);
    if (rc != 0) {
      uv_close((uv_handle_t *)&r->poll, on_closed);
      return throw_errno(env, "uv_poll_start", -rc);
    }
  } else {
    napi_delete_reference(env, r->callback);
    napi_delete_reference(env, r->buffer);
    napi_delete_reference(env, r->lengths);
    napi_async_destroy(env, r->async);
    free(r);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  napi_value handle;
  CHECK(env, napi_create_external(env, r, reader_finalize, NULL, &handle));
  return handle;
}

/* stopReader(handle): idempotent. */
static napi_value tun_stop_reader(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  void *data;
  CHECK(env, napi_get_value_external(env, argv[0], &data));
  reader_t *r = data;
  if (!r->stopped) {
    r->stopped = 1;
    uv_poll_stop(&r->poll);
    uv_close((uv_handle_t *)&r->poll, on_closed);
  }
  return NULL;
}

/* write(fd, buffer, offset, length) -> bytes written, or -errno */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return NULL;
  int32_t fd;
  uint32_t off, len;
  void *base;
  size_t blen;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  CHECK(env, napi_get_buffer_info(env, argv[1], &base, &blen));
  CHECK(env, napi_get_value_uint32(env, argv[2], &off));
  CHECK(env, napi_get_value_uint32(env, argv[3], &len));
  if ((size_t)off + len > blen) {
    napi_throw_range_error(env, NULL, "sluice_tun: write beyond the buffer");
    return NULL;
  }
  ssize_t n;
  do n = write(fd, (uint8_t *)base + off, len);
  while (n < 0 && errno == EINTR);
  napi_value out;
  CHECK(env, napi_create_int32(env, n < 0 ? -errno : (int32_t)n, &out));
  return out;
}

/*
 * writeBatch(fd, buffer, offsets: Int32Array, lengths: Int32Array, count) -> failures.
 * One call for a batch's packets. A TUN write takes exactly one packet (writev would glue the
 * iovecs into one), so this is a loop of write(); each lengths[i] is replaced by its result
 * (bytes written, or -errno) so the caller can look for failures only when there were some.
 */
static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return NULL;
  int32_t fd;
  uint32_t count;
  void *base;
  size_t blen;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  CHECK(env, napi_get_buffer_info(env, argv[1], &base, &blen));
  CHECK(env, napi_get_value_uint32(env, argv[4], &count));
  napi_typedarray_type ot, lt;
  size_t olen, llen, boff;
  void *odata, *ldata;
  napi_value ab;
  CHECK(env, napi_get_typedarray_info(env, argv[2], &ot, &olen, &odata, &ab, &boff));
  CHECK(env, napi_get_typedarray_info(env, argv[3], &lt, &llen, &ldata, &ab, &boff));
  if (ot != napi_int32_array || lt != napi_int32_array || count > olen || count > llen) {
    napi_throw_range_error(env, NULL, "sluice_tun: offsets or lengths shorter than the batch");
    return NULL;
  }
  const int32_t *offs = odata;
  int32_t *lens = ldata;
  uint32_t failures = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (offs[i] < 0 || lens[i] < 0 || (size_t)offs[i] + (size_t)lens[i] > blen) {
      lens[i] = -EINVAL;
      failures++;
      continue;
    }
    ssize_t n;
    do n = write(fd, (uint8_t *)base + offs[i], (size_t)lens[i]);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      lens[i] = -errno;
      failures++;
    } else {
      lens[i] = (int32_t)n;
    }
  }
  napi_value out;
  CHECK(env, napi_create_uint32(env, failures, &out));
  return out;
}

static napi_value tun_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  CHECK(env, napi_get_value_int32(env, argv[0], &fd));
  if (fd >= 0) close(fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, tun_open, NULL, NULL, NULL, napi_default, NULL},
      {"startReader", NULL, tun_start_reader, NULL, NULL, NULL, napi_default, NULL},
      {"stopReader", NULL, tun_stop_reader, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, tun_write, NULL, NULL, NULL, napi_default, NULL},
      {"writeBatch", NULL, tun_write_batch, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, tun_close, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
