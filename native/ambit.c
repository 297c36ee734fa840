/*
 * ambit native addon: only the syscalls Node lacks.
 *   - create a TCP socket inside another network namespace (setns in, socket(), setns back)
 *   - socket options Node does not expose (SO_MARK, IP_TRANSPARENT, IP_FREEBIND, SO_REUSEPORT, ...)
 *   - SO_ORIGINAL_DST
 *   - AF_UNIX SOCK_SEQPACKET with SCM_RIGHTS, non-blocking, driven by a libuv poll handle
 *   - malloc_trim: hand the C heap's free pages back to the kernel after a burst of traffic
 * No policy, parsing or protocol logic lives here: the TypeScript facade in src/sys/ owns that.
 * Errors are thrown as JS errors whose `code` is the errno name and whose message names the call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>
#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#define MAX_FDS_PER_MESSAGE 16

/* The namespace the main thread was in when the addon loaded: every switch returns here. */
static int home_netns_fd = -1;

/* ---------- error helpers ---------- */

static napi_value throw_errno(napi_env env, const char *op, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", op, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errno_value, syscall;
  napi_create_int32(env, -err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_create_string_utf8(env, op, NAPI_AUTO_LENGTH, &syscall);
  napi_set_named_property(env, error, "syscall", syscall);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

#define NAPI_CALL(env, call)                                                                          \
  do {                                                                                                \
    if ((call) != napi_ok) {                                                                          \
      bool pending;                                                                                   \
      napi_is_exception_pending((env), &pending);                                                     \
      if (!pending) napi_throw_error((env), "ERR_NAPI", "N-API call failed: " #call);                 \
      return NULL;                                                                                    \
    }                                                                                                 \
  } while (0)

static bool get_int_arg(napi_env env, napi_value v, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

/* Reads an optional property; returns false when absent/undefined. */
static bool get_prop(napi_env env, napi_value obj, const char *name, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return false;
  if (napi_get_named_property(env, obj, name, out) != napi_ok) return false;
  napi_valuetype t;
  napi_typeof(env, *out, &t);
  return t != napi_undefined && t != napi_null;
}

static bool get_bool_prop(napi_env env, napi_value obj, const char *name) {
  napi_value v;
  bool b = false;
  if (get_prop(env, obj, name, &v)) napi_get_value_bool(env, v, &b);
  return b;
}

static napi_value make_int(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

/* ---------- sockets inside a netns ---------- */

typedef struct {
  int family;      /* AF_INET or AF_INET6 */
  int has_mark;
  uint32_t mark;
  int transparent; /* IP_TRANSPARENT / IPV6_TRANSPARENT */
  int freebind;
  int reuse_addr;
  int reuse_port;
  int v6_only;     /* only meaningful for AF_INET6; default 0 = dual stack */
  int nodelay;
  int has_bind;
  struct sockaddr_storage bind_addr;
  socklen_t bind_len;
} sock_opts;

static int apply_sock_opts(int fd, const sock_opts *o, const char **failed) {
  int one = 1;
  if (o->has_mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &o->mark, sizeof o->mark) < 0) {
    *failed = "setsockopt(SO_MARK)";
    return -1;
  }
  if (o->reuse_addr && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
    *failed = "setsockopt(SO_REUSEADDR)";
    return -1;
  }
  if (o->reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    *failed = "setsockopt(SO_REUSEPORT)";
    return -1;
  }
  if (o->nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
    *failed = "setsockopt(TCP_NODELAY)";
    return -1;
  }
  if (o->family == AF_INET6) {
    int v6only = o->v6_only ? 1 : 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
      *failed = "setsockopt(IPV6_V6ONLY)";
      return -1;
    }
  }
  if (o->transparent) {
    /* A dual-stack socket needs both: v4-mapped traffic is governed by IP_TRANSPARENT. */
    if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) < 0) {
      *failed = "setsockopt(IP_TRANSPARENT)";
      return -1;
    }
    if (o->family == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one) < 0) {
      *failed = "setsockopt(IPV6_TRANSPARENT)";
      return -1;
    }
  }
  if (o->freebind) {
    if (setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one) < 0) {
      *failed = "setsockopt(IP_FREEBIND)";
      return -1;
    }
    if (o->family == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof one) < 0) {
      *failed = "setsockopt(IPV6_FREEBIND)";
      return -1;
    }
  }
  return 0;
}

/* Parses {family, mark, transparent, freebind, reuseAddr, reusePort, v6Only, noDelay, bindAddress, bindPort}. */
static bool parse_sock_opts(napi_env env, napi_value obj, sock_opts *o) {
  memset(o, 0, sizeof *o);
  napi_value v;
  int32_t family = 4;
  if (get_prop(env, obj, "family", &v) && !get_int_arg(env, v, &family)) return false;
  if (family != 4 && family != 6) return false;
  o->family = family == 6 ? AF_INET6 : AF_INET;
  if (get_prop(env, obj, "mark", &v)) {
    uint32_t mark;
    if (napi_get_value_uint32(env, v, &mark) != napi_ok) return false;
    o->has_mark = 1;
    o->mark = mark;
  }
  o->transparent = get_bool_prop(env, obj, "transparent");
  o->freebind = get_bool_prop(env, obj, "freebind");
  o->reuse_addr = get_bool_prop(env, obj, "reuseAddr");
  o->reuse_port = get_bool_prop(env, obj, "reusePort");
  o->v6_only = get_bool_prop(env, obj, "v6Only");
  o->nodelay = get_bool_prop(env, obj, "noDelay");
  char addr[INET6_ADDRSTRLEN + 1] = {0};
  size_t len = 0;
  bool has_addr = false;
  int32_t port = 0;
  if (get_prop(env, obj, "bindAddress", &v)) {
    if (napi_get_value_string_utf8(env, v, addr, sizeof addr, &len) != napi_ok) return false;
    has_addr = true;
  }
  if (get_prop(env, obj, "bindPort", &v)) {
    if (!get_int_arg(env, v, &port) || port < 0 || port > 65535) return false;
  }
  if (has_addr || port != 0) {
    o->has_bind = 1;
    if (o->family == AF_INET) {
      struct sockaddr_in *sin = (struct sockaddr_in *)&o->bind_addr;
      sin->sin_family = AF_INET;
      sin->sin_port = htons((uint16_t)port);
      if (has_addr && inet_pton(AF_INET, addr, &sin->sin_addr) != 1) return false;
      o->bind_len = sizeof *sin;
    } else {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o->bind_addr;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons((uint16_t)port);
      if (has_addr && inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1) return false;
      o->bind_len = sizeof *sin6;
    }
  }
  return true;
}

/*
 * tcpSocket(netnsFd, options) -> fd, udpSocket(netnsFd, options) -> fd
 * netnsFd < 0 creates the socket in the caller's namespace. The socket belongs to the namespace
 * it was created in for its whole life, so only socket() needs to run while switched.
 */
static napi_value netns_socket(napi_env env, napi_callback_info info, int type, const char *usage) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t nsfd;
  if (argc < 2 || !get_int_arg(env, argv[0], &nsfd)) return throw_type(env, usage);
  sock_opts o;
  if (!parse_sock_opts(env, argv[1], &o)) return throw_type(env, usage);

  if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0) return throw_errno(env, "setns(pod netns)", errno);
  int fd = socket(o.family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int socket_errno = errno;
  if (nsfd >= 0 && setns(home_netns_fd, CLONE_NEWNET) < 0) {
    /* Continuing in the wrong namespace would silently misroute every later socket. */
    fprintf(stderr, "ambit: fatal: cannot return to the home network namespace: %s\n", strerror(errno));
    abort();
  }
  if (fd < 0) return throw_errno(env, "socket", socket_errno);

  const char *failed = NULL;
  if (apply_sock_opts(fd, &o, &failed) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, failed, e);
  }
  if (o.has_bind && bind(fd, (struct sockaddr *)&o.bind_addr, o.bind_len) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  return make_int(env, fd);
}

static napi_value tcp_socket(napi_env env, napi_callback_info info) {
  return netns_socket(env, info, SOCK_STREAM, "tcpSocket(netnsFd, options)");
}

/* UDP for the DNS proxy: TCP-only options (TCP_NODELAY) are not set on it by callers. */
static napi_value udp_socket(napi_env env, napi_callback_info info) {
  return netns_socket(env, info, SOCK_DGRAM, "udpSocket(netnsFd, options)");
}

/* setSocketOptions(fd, options): the same options on a socket Node created. */
static napi_value set_socket_options(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 2 || !get_int_arg(env, argv[0], &fd)) return throw_type(env, "setSocketOptions(fd, options)");
  sock_opts o;
  if (!parse_sock_opts(env, argv[1], &o)) return throw_type(env, "setSocketOptions: invalid options");
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) return throw_errno(env, "getsockname", errno);
  o.family = ss.ss_family;
  const char *failed = NULL;
  if (apply_sock_opts(fd, &o, &failed) < 0) return throw_errno(env, failed, errno);
  return NULL;
}

/* getSocketMark(fd) -> number */
static napi_value get_socket_mark(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !get_int_arg(env, argv[0], &fd)) return throw_type(env, "getSocketMark(fd)");
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) < 0) return throw_errno(env, "getsockopt(SO_MARK)", errno);
  return make_int(env, mark);
}

static napi_value sockaddr_to_js(napi_env env, const struct sockaddr_storage *ss) {
  char buf[INET6_ADDRSTRLEN];
  int port;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
    port = ntohs(sin->sin_port);
  } else {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
    port = ntohs(sin6->sin6_port);
  }
  napi_value obj, address, family;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &address);
  napi_create_string_utf8(env, ss->ss_family == AF_INET ? "IPv4" : "IPv6", NAPI_AUTO_LENGTH, &family);
  napi_set_named_property(env, obj, "address", address);
  napi_set_named_property(env, obj, "family", family);
  napi_set_named_property(env, obj, "port", make_int(env, port));
  return obj;
}

/* originalDst(fd, family 4|6) -> {address, port, family}: the pre-NAT destination from conntrack. */
static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, family;
  if (argc < 2 || !get_int_arg(env, argv[0], &fd) || !get_int_arg(env, argv[1], &family))
    return throw_type(env, "originalDst(fd, family)");
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (family == 6) {
    len = sizeof(struct sockaddr_in6);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &ss, &len) < 0)
      return throw_errno(env, "getsockopt(IP6T_SO_ORIGINAL_DST)", errno);
  } else {
    len = sizeof(struct sockaddr_in);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &ss, &len) < 0)
      return throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", errno);
  }
  return sockaddr_to_js(env, &ss);
}

/* ---------- network namespace switching for the current thread ---------- */

/* setns(fd): used by tests and by the no-op start-up capability check (switch to home and back). */
static napi_value netns_check(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t nsfd;
  if (argc < 1 || !get_int_arg(env, argv[0], &nsfd)) return throw_type(env, "netnsCheck(fd)");
  if (setns(nsfd, CLONE_NEWNET) < 0) return throw_errno(env, "setns", errno);
  if (setns(home_netns_fd, CLONE_NEWNET) < 0) {
    fprintf(stderr, "ambit: fatal: cannot return to the home network namespace: %s\n", strerror(errno));
    abort();
  }
  return NULL;
}

/* ---------- AF_UNIX SOCK_SEQPACKET ---------- */

static bool fill_sun(napi_env env, napi_value v, struct sockaddr_un *sun, socklen_t *len) {
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, sun->sun_path, sizeof sun->sun_path, &n) != napi_ok) return false;
  if (n == 0 || n >= sizeof sun->sun_path - 1) return false;
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return true;
}

/* seqpacketListen(path, backlog, mode) -> fd. chmod happens before listen(), so no peer can connect
 * through looser permissions in between. */
static napi_value seqpacket_listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sun;
  socklen_t len;
  int32_t backlog, mode;
  if (argc < 3 || !fill_sun(env, argv[0], &sun, &len) || !get_int_arg(env, argv[1], &backlog) ||
      !get_int_arg(env, argv[2], &mode))
    return throw_type(env, "seqpacketListen(path, backlog, mode): path must fit sockaddr_un");
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
  if (bind(fd, (struct sockaddr *)&sun, len) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  if (chmod(sun.sun_path, (mode_t)mode) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    unlink(sun.sun_path);
    return throw_errno(env, "listen", e);
  }
  return make_int(env, fd);
}

/* seqpacketConnect(path) -> fd */
static napi_value seqpacket_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sun;
  socklen_t len;
  if (argc < 1 || !fill_sun(env, argv[0], &sun, &len)) return throw_type(env, "seqpacketConnect(path)");
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
  if (connect(fd, (struct sockaddr *)&sun, len) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "connect", e);
  }
  return make_int(env, fd);
}

/* seqpacketPair() -> [fd, fd] (tests) */
static napi_value seqpacket_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    return throw_errno(env, "socketpair", errno);
  napi_value arr;
  napi_create_array_with_length(env, 2, &arr);
  napi_set_element(env, arr, 0, make_int(env, sv[0]));
  napi_set_element(env, arr, 1, make_int(env, sv[1]));
  return arr;
}

/* seqpacketAccept(fd) -> fd, or -1 when no connection is pending */
static napi_value seqpacket_accept(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !get_int_arg(env, argv[0], &fd)) return throw_type(env, "seqpacketAccept(fd)");
  int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) return make_int(env, -1);
    return throw_errno(env, "accept4", errno);
  }
  return make_int(env, c);
}

/* seqpacketSend(fd, buffer, fds[]) -> bytes sent, or -1 when the socket buffer is full */
static napi_value seqpacket_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  void *data = NULL;
  size_t data_len = 0;
  bool is_array = false;
  if (argc < 3 || !get_int_arg(env, argv[0], &fd) ||
      napi_get_buffer_info(env, argv[1], &data, &data_len) != napi_ok ||
      napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array)
    return throw_type(env, "seqpacketSend(fd, buffer, fds)");
  uint32_t nfds = 0;
  napi_get_array_length(env, argv[2], &nfds);
  if (nfds > MAX_FDS_PER_MESSAGE) return throw_type(env, "seqpacketSend: too many fds");
  int fds[MAX_FDS_PER_MESSAGE];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value e;
    napi_get_element(env, argv[2], i, &e);
    if (!get_int_arg(env, e, &fds[i])) return throw_type(env, "seqpacketSend: fds must be integers");
  }
  struct iovec iov = {.iov_base = data, .iov_len = data_len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MESSAGE)];
    struct cmsghdr align;
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return make_int(env, -1);
    return throw_errno(env, "sendmsg", errno);
  }
  return make_int(env, n);
}

/*
 * seqpacketRecv(fd, maxBytes) -> {data: Buffer, fds: number[]} | null (nothing pending) | {eof: true}
 * A datagram or fd list that did not fit is an error (EMSGSIZE for the data, ECTRUNC for the
 * fds), never a half-read message; fds that did arrive with it are closed first.
 */
static napi_value seqpacket_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, max_bytes;
  if (argc < 2 || !get_int_arg(env, argv[0], &fd) || !get_int_arg(env, argv[1], &max_bytes) || max_bytes <= 0 ||
      max_bytes > (1 << 24))
    return throw_type(env, "seqpacketRecv(fd, maxBytes)");
  void *buf = malloc((size_t)max_bytes);
  if (!buf) return throw_errno(env, "malloc", ENOMEM);
  struct iovec iov = {.iov_base = buf, .iov_len = (size_t)max_bytes};
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MESSAGE)];
    struct cmsghdr align;
  } control;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                       .msg_controllen = sizeof control.buf};
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    free(buf);
    if (e == EAGAIN || e == EWOULDBLOCK) {
      napi_value null_value;
      napi_get_null(env, &null_value);
      return null_value;
    }
    return throw_errno(env, "recvmsg", e);
  }
  int fds[MAX_FDS_PER_MESSAGE];
  int nfds = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      int count = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      int *p = (int *)CMSG_DATA(cm);
      for (int i = 0; i < count; i++) {
        if (nfds < MAX_FDS_PER_MESSAGE) fds[nfds++] = p[i];
        else close(p[i]);
      }
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    for (int i = 0; i < nfds; i++) close(fds[i]);
    free(buf);
    if (msg.msg_flags & MSG_TRUNC) {
      char m[128];
      snprintf(m, sizeof m, "recvmsg: datagram larger than %d bytes (truncated, dropped)", max_bytes);
      napi_value code, message, error;
      napi_create_string_utf8(env, "EMSGSIZE", NAPI_AUTO_LENGTH, &code);
      napi_create_string_utf8(env, m, NAPI_AUTO_LENGTH, &message);
      napi_create_error(env, code, message, &error);
      napi_throw(env, error);
      return NULL;
    }
    napi_value code, message, error;
    napi_create_string_utf8(env, "ECTRUNC", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, "recvmsg: control data truncated (too many fds, dropped)", NAPI_AUTO_LENGTH,
                            &message);
    napi_create_error(env, code, message, &error);
    napi_throw(env, error);
    return NULL;
  }
  napi_value result;
  napi_create_object(env, &result);
  if (n == 0 && nfds == 0) {
    free(buf);
    napi_value t;
    napi_get_boolean(env, true, &t);
    napi_set_named_property(env, result, "eof", t);
    return result;
  }
  napi_value data, fd_array;
  void *copy;
  napi_create_buffer_copy(env, (size_t)n, buf, &copy, &data);
  free(buf);
  napi_create_array_with_length(env, (size_t)nfds, &fd_array);
  for (int i = 0; i < nfds; i++) napi_set_element(env, fd_array, (uint32_t)i, make_int(env, fds[i]));
  napi_set_named_property(env, result, "data", data);
  napi_set_named_property(env, result, "fds", fd_array);
  return result;
}

/* ---------- libuv poll watcher ---------- */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  napi_ref self;
  int closed;
} poll_watcher;

static void poll_close_cb(uv_handle_t *h) {
  poll_watcher *w = (poll_watcher *)h->data;
  free(w);
}

static void release_watcher(poll_watcher *w) {
  if (w->closed) return;
  w->closed = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->async);
  uv_close((uv_handle_t *)&w->poll, poll_close_cb);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poll_watcher *w = (poll_watcher *)h->data;
  if (w->closed) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, argv[2], result;
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, status, &argv[0]);
  napi_create_int32(env, events, &argv[1]);
  if (napi_make_callback(env, w->async, recv, cb, 2, argv, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

static void watcher_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  poll_watcher *w = (poll_watcher *)data;
  /* The JS object is gone; if the poll was never stopped, stop it now so libuv does not call a dead callback. */
  release_watcher(w);
}

/* pollStart(fd, events, callback(status, events)) -> watcher. events: 1 = readable, 2 = writable. */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, events;
  napi_valuetype t;
  if (argc < 3 || !get_int_arg(env, argv[0], &fd) || !get_int_arg(env, argv[1], &events) ||
      napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function)
    return throw_type(env, "pollStart(fd, events, callback)");
  uv_loop_t *loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  poll_watcher *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, "calloc", ENOMEM);
  int r = uv_poll_init(loop, &w->poll, fd);
  if (r < 0) {
    free(w);
    return throw_errno(env, "uv_poll_init", -r);
  }
  w->poll.data = w;
  w->env = env;
  napi_create_reference(env, argv[2], 1, &w->callback);
  napi_value name;
  napi_create_string_utf8(env, "ambit.SeqpacketPoll", NAPI_AUTO_LENGTH, &name);
  napi_value resource;
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &w->async);
  r = uv_poll_start(&w->poll, events & (UV_READABLE | UV_WRITABLE), on_poll);
  napi_value obj;
  napi_create_object(env, &obj);
  napi_wrap(env, obj, w, watcher_finalize, NULL, NULL);
  if (r < 0) {
    release_watcher(w);
    return throw_errno(env, "uv_poll_start", -r);
  }
  return obj;
}

static poll_watcher *unwrap_watcher(napi_env env, napi_value obj) {
  void *p = NULL;
  if (napi_unwrap(env, obj, &p) != napi_ok) return NULL;
  return (poll_watcher *)p;
}

/* pollUpdate(watcher, events): 0 pauses the watcher without closing it. */
static napi_value poll_update(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t events;
  poll_watcher *w;
  if (argc < 2 || !(w = unwrap_watcher(env, argv[0])) || !get_int_arg(env, argv[1], &events))
    return throw_type(env, "pollUpdate(watcher, events)");
  if (w->closed) return NULL;
  int r = events ? uv_poll_start(&w->poll, events & (UV_READABLE | UV_WRITABLE), on_poll) : uv_poll_stop(&w->poll);
  if (r < 0) return throw_errno(env, "uv_poll_start", -r);
  return NULL;
}

/* pollStop(watcher): must be called before the fd is closed. */
static napi_value poll_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  poll_watcher *w;
  if (argc < 1 || !(w = unwrap_watcher(env, argv[0]))) return throw_type(env, "pollStop(watcher)");
  if (!w->closed) {
    void *ignored;
    napi_remove_wrap(env, argv[0], &ignored);
    release_watcher(w);
  }
  return NULL;
}

/* ---------- memory ---------- */

/*
 * malloc_trim(0): glibc keeps the pages of freed chunks (TLS records, socket read buffers) in its
 * arenas; after a burst of traffic that is tens of MiB that nothing will use until the next burst.
 * Trimming returns every free page of every arena (madvise DONTNEED), not only the top of the heap.
 * Returns whether any memory was released; false where the C library has no malloc_trim.
 */
static napi_value malloc_trim_all(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#ifdef __GLIBC__
  NAPI_CALL(env, napi_get_boolean(env, malloc_trim(0) == 1, &result));
#else
  NAPI_CALL(env, napi_get_boolean(env, false, &result));
#endif
  return result;
}

/* ---------- module ---------- */

static napi_value init(napi_env env, napi_value exports) {
  if (home_netns_fd < 0) {
    home_netns_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_netns_fd < 0) return throw_errno(env, "open(/proc/thread-self/ns/net)", errno);
  }
  napi_property_descriptor props[] = {
      {"tcpSocket", NULL, tcp_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSocket", NULL, udp_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setSocketOptions", NULL, set_socket_options, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getSocketMark", NULL, get_socket_mark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"originalDst", NULL, original_dst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netnsCheck", NULL, netns_check, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqpacketListen", NULL, seqpacket_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqpacketConnect", NULL, seqpacket_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqpacketPair", NULL, seqpacket_pair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqpacketAccept", NULL, seqpacket_accept, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqpacketSend", NULL, seqpacket_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seqpacketRecv", NULL, seqpacket_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollUpdate", NULL, poll_update, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mallocTrim", NULL, malloc_trim_all, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
