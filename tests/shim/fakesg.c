/*
 * fakesg: an LD_PRELOAD library that makes configured paths look like SCSI devices to
 * sg3_utils (sg_persist, sg_turs) and friends, and forwards every SG_IO to the stonewall
 * "nexus stand-in" (stonewall/lab/nexus.py), which runs the CDB on a long-lived iSCSI
 * session. Tests only: it lets the real sg3_utils binaries talk to tgtd without a kernel
 * initiator.
 *
 * Configuration: STONEWALL_FAKESG_MAP names a JSON file
 *   {"devices": [{"path": "/x/sdb", "kind": "sg"|"block", "socket": "/x/nexus.sock",
 *                 "device": "<id at the nexus>", "minor": 0}, ...]}
 * Without the variable, or for any other path, every call goes straight to libc.
 *
 * What it intercepts, and why:
 * - open/open64/__open_2/__open64_2/openat/openat64 on a configured path: connects a unix
 *   socket to the nexus and returns that socket as the device fd (close() ends it).
 * - stat/fstat/lstat/fstatat (+64 forms, the pre-2.33 __xstat family, statx): sg3_utils
 *   1.46 fstat()s the fd (fstat64@GLIBC_2.33) and only treats char major 21 as sg; a
 *   "block" entry reports block major 8 (sd) so tools that insist on a block device accept it.
 * - ioctl: SG_GET_VERSION_NUM answers 30536 (sg 3.5.36, so sg3_utils keeps to the v3
 *   interface), SG_IO (sg_io_hdr v3) goes to the nexus; other ioctls on a fake fd: ENOTTY.
 *
 * Wire protocol (both directions): frames of a 4-byte big-endian payload length + payload.
 *   'O' <device id>                                     -> 'o' u32 errno (0: opened)
 *   'X' u32 timeout_ms, u8 dir (0 none, 1 in, 2 out), u32 data_in_len, u8 cdb_len, cdb,
 *       data_out                                        -> 'x' u8 outcome (0 done,
 *       1 transport error, 2 timed out), u8 status, u32 duration_ms, u8 sense_len, sense,
 *       data_in
 */
#define _GNU_SOURCE
#define _LARGEFILE64_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <scsi/sg.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_DEVICES 4096         /* fence_scsi maps every LUN path in one environment: 512 x 2 */
#define MAX_FDS 4096
#define MAP_MAX_BYTES (1 << 20)
#define SG_VERSION 30536          /* what a Linux 6.x sg driver reports */
#define SG_MAJOR 21               /* SCSI_GENERIC_MAJOR */
#define SD_MAJOR 8                /* SCSI_DISK0_MAJOR */
#define DID_NO_CONNECT 0x01
#define DID_TIME_OUT 0x03
#define DID_TRANSPORT_FAILFAST 0x0f
#define DRIVER_SENSE 0x08
#define DEFAULT_SG_TIMEOUT_MS 60000
#define NEXUS_MARGIN_MS 5000      /* the nexus answers "timed out" itself before this */
#define OPEN_TIMEOUT_MS 10000

enum kind { KIND_SG, KIND_BLOCK };

struct device {
    char path[PATH_MAX];
    char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char id[256];
    enum kind kind;
    unsigned minor;
};

static struct device devices[MAX_DEVICES];
static int device_count;
static pthread_once_t map_once = PTHREAD_ONCE_INIT;
/* fd -> 1 + index into devices; 0 for fds that are not ours. */
static int fake_fds[MAX_FDS];
static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- libc's own functions ------------------------------------------------------------ */

#define DECLARE_REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
DECLARE_REAL(int, open, const char *, int, ...);
DECLARE_REAL(int, open64, const char *, int, ...);
DECLARE_REAL(int, __open_2, const char *, int);
DECLARE_REAL(int, __open64_2, const char *, int);
DECLARE_REAL(int, openat, int, const char *, int, ...);
DECLARE_REAL(int, openat64, int, const char *, int, ...);
DECLARE_REAL(int, close, int);
DECLARE_REAL(int, ioctl, int, unsigned long, ...);
DECLARE_REAL(int, stat, const char *, struct stat *);
DECLARE_REAL(int, stat64, const char *, struct stat64 *);
DECLARE_REAL(int, lstat, const char *, struct stat *);
DECLARE_REAL(int, lstat64, const char *, struct stat64 *);
DECLARE_REAL(int, fstat, int, struct stat *);
DECLARE_REAL(int, fstat64, int, struct stat64 *);
DECLARE_REAL(int, fstatat, int, const char *, struct stat *, int);
DECLARE_REAL(int, fstatat64, int, const char *, struct stat64 *, int);
DECLARE_REAL(int, __xstat, int, const char *, struct stat *);
DECLARE_REAL(int, __xstat64, int, const char *, struct stat64 *);
DECLARE_REAL(int, __lxstat, int, const char *, struct stat *);
DECLARE_REAL(int, __lxstat64, int, const char *, struct stat64 *);
DECLARE_REAL(int, __fxstat, int, int, struct stat *);
DECLARE_REAL(int, __fxstat64, int, int, struct stat64 *);
DECLARE_REAL(int, __fxstatat, int, int, const char *, struct stat *, int);
DECLARE_REAL(int, __fxstatat64, int, int, const char *, struct stat64 *, int);
DECLARE_REAL(int, statx, int, const char *, int, unsigned int, struct statx *);

static void *lookup_real(const char *name)
{
    void *symbol = dlsym(RTLD_NEXT, name);
    if (symbol == NULL)  /* glibc >= 2.33 keeps __xstat & co. only as compat symbols */
        symbol = dlvsym(RTLD_NEXT, name, "GLIBC_2.2.5");
    if (symbol == NULL) {
        fprintf(stderr, "fakesg: libc has no %s\n", name);
        abort();
    }
    return symbol;
}

static void *resolve(void **slot, const char *name)
{
    if (*slot == NULL)
        *slot = lookup_real(name);
    return *slot;
}

#define RESOLVE(name) ((__typeof__(real_##name))resolve((void **)&real_##name, #name))

/* ---- the device map ------------------------------------------------------------------ */

/* A JSON reader for the map's small subset: objects, arrays, strings (with the simple
 * escapes), integers, true/false/null. Unknown keys are skipped. */
struct reader {
    const char *at;
    const char *end;
    const char *error;
};

static void skip_space(struct reader *r)
{
    while (r->at < r->end && (*r->at == ' ' || *r->at == '\n' || *r->at == '\t' ||
                              *r->at == '\r'))
        r->at++;
}

static int expect(struct reader *r, char c)
{
    skip_space(r);
    if (r->at < r->end && *r->at == c) {
        r->at++;
        return 1;
    }
    r->error = "unexpected character";
    return 0;
}

static int peek(struct reader *r, char c)
{
    skip_space(r);
    return r->at < r->end && *r->at == c;
}

static int read_string(struct reader *r, char *out, size_t size)
{
    size_t n = 0;
    if (!expect(r, '"'))
        return 0;
    while (r->at < r->end && *r->at != '"') {
        char c = *r->at++;
        if (c == '\\') {
            if (r->at >= r->end)
                break;
            c = *r->at++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case '"': case '\\': case '/': break;
            default: r->error = "unsupported string escape"; return 0;
            }
        }
        if (n + 1 >= size) {
            r->error = "string too long";
            return 0;
        }
        out[n++] = c;
    }
    if (!expect(r, '"'))
        return 0;
    out[n] = '\0';
    return 1;
}

static int read_number(struct reader *r, long *out)
{
    char *stop;
    skip_space(r);
    errno = 0;
    *out = strtol(r->at, &stop, 10);
    if (stop == r->at || errno != 0 || stop > r->end) {
        r->error = "bad number";
        return 0;
    }
    r->at = stop;
    return 1;
}

static int skip_value(struct reader *r, int depth);

static int skip_container(struct reader *r, char open, char close, int depth)
{
    char scratch[PATH_MAX];
    if (!expect(r, open))
        return 0;
    if (peek(r, close))
        return expect(r, close);
    do {
        if (open == '{' && (!read_string(r, scratch, sizeof scratch) || !expect(r, ':')))
            return 0;
        if (!skip_value(r, depth + 1))
            return 0;
    } while (peek(r, ',') && expect(r, ','));
    return expect(r, close);
}

static int skip_value(struct reader *r, int depth)
{
    char scratch[PATH_MAX];
    long number;
    if (depth > 16) {
        r->error = "nested too deeply";
        return 0;
    }
    skip_space(r);
    if (r->at >= r->end) {
        r->error = "truncated";
        return 0;
    }
    switch (*r->at) {
    case '"': return read_string(r, scratch, sizeof scratch);
    case '{': return skip_container(r, '{', '}', depth);
    case '[': return skip_container(r, '[', ']', depth);
    case 't': case 'f': case 'n': {
        static const char *const words[] = {"true", "false", "null"};
        for (size_t i = 0; i < 3; i++) {
            size_t len = strlen(words[i]);
            if ((size_t)(r->end - r->at) >= len && memcmp(r->at, words[i], len) == 0) {
                r->at += len;
                return 1;
            }
        }
        r->error = "bad literal";
        return 0;
    }
    default: return read_number(r, &number);
    }
}

static int read_device(struct reader *r, struct device *d)
{
    char key[64], kind[16] = "sg";
    long minor = -1;
    memset(d, 0, sizeof *d);
    if (!expect(r, '{'))
        return 0;
    while (!peek(r, '}')) {
        if (!read_string(r, key, sizeof key) || !expect(r, ':'))
            return 0;
        int ok;
        if (strcmp(key, "path") == 0)
            ok = read_string(r, d->path, sizeof d->path);
        else if (strcmp(key, "socket") == 0)
            ok = read_string(r, d->socket_path, sizeof d->socket_path);
        else if (strcmp(key, "device") == 0)
            ok = read_string(r, d->id, sizeof d->id);
        else if (strcmp(key, "kind") == 0)
            ok = read_string(r, kind, sizeof kind);
        else if (strcmp(key, "minor") == 0)
            ok = read_number(r, &minor);
        else
            ok = skip_value(r, 1);
        if (!ok)
            return 0;
        if (peek(r, ','))
            expect(r, ',');
        else
            break;
    }
    if (!expect(r, '}'))
        return 0;
    if (!d->path[0] || !d->socket_path[0] || !d->id[0] || minor < 0 || minor > 0xfffff) {
        r->error = "a device needs path, socket, device and minor";
        return 0;
    }
    if (strcmp(kind, "sg") == 0)
        d->kind = KIND_SG;
    else if (strcmp(kind, "block") == 0)
        d->kind = KIND_BLOCK;
    else {
        r->error = "kind must be sg or block";
        return 0;
    }
    d->minor = (unsigned)minor;
    return 1;
}

static int read_map(struct reader *r)
{
    char key[64];
    if (!expect(r, '{'))
        return 0;
    while (!peek(r, '}')) {
        if (!read_string(r, key, sizeof key) || !expect(r, ':'))
            return 0;
        if (strcmp(key, "devices") == 0) {
            if (!expect(r, '['))
                return 0;
            while (!peek(r, ']')) {
                if (device_count == MAX_DEVICES) {
                    r->error = "too many devices";
                    return 0;
                }
                if (!read_device(r, &devices[device_count]))
                    return 0;
                device_count++;
                if (peek(r, ','))
                    expect(r, ',');
                else
                    break;
            }
            if (!expect(r, ']'))
                return 0;
        } else if (!skip_value(r, 1)) {
            return 0;
        }
        if (peek(r, ','))
            expect(r, ',');
        else
            break;
    }
    return expect(r, '}');
}

static void load_map(void)
{
    const char *name = getenv("STONEWALL_FAKESG_MAP");
    if (name == NULL || !*name)
        return;
    int fd = RESOLVE(open)(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "fakesg: cannot open map %s: %s\n", name, strerror(errno));
        return;
    }
    char *text = malloc(MAP_MAX_BYTES);
    size_t used = 0;
    ssize_t got;
    while (text && used < MAP_MAX_BYTES &&
           (got = read(fd, text + used, MAP_MAX_BYTES - used)) > 0)
        used += (size_t)got;
    RESOLVE(close)(fd);
    if (text == NULL)
        return;
    struct reader r = {text, text + used, NULL};
    if (!read_map(&r)) {
        /* A broken map must not half-apply: no path is faked, so tools see the real files. */
        fprintf(stderr, "fakesg: bad map %s near byte %ld: %s\n", name, (long)(r.at - text),
                r.error ? r.error : "syntax error");
        device_count = 0;
    }
    free(text);
}

static const struct device *device_for_path(const char *path)
{
    pthread_once(&map_once, load_map);
    if (path == NULL)
        return NULL;
    for (int i = 0; i < device_count; i++)
        if (strcmp(devices[i].path, path) == 0)
            return &devices[i];
    return NULL;
}

static const struct device *device_for_fd(int fd)
{
    if (fd < 0 || fd >= MAX_FDS)
        return NULL;
    pthread_mutex_lock(&fds_lock);
    int slot = fake_fds[fd];
    pthread_mutex_unlock(&fds_lock);
    return slot ? &devices[slot - 1] : NULL;
}

static void remember_fd(int fd, const struct device *d)
{
    if (fd < 0 || fd >= MAX_FDS)
        return;
    pthread_mutex_lock(&fds_lock);
    fake_fds[fd] = d ? (int)(d - devices) + 1 : 0;
    pthread_mutex_unlock(&fds_lock);
}

/* ---- talking to the nexus ------------------------------------------------------------ */

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int send_all(int fd, const void *data, size_t length)
{
    const unsigned char *p = data;
    while (length) {
        ssize_t n = send(fd, p, length, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

/* Reads exactly `length` bytes, waiting at most `timeout_ms` for each chunk. */
static int recv_all(int fd, void *data, size_t length, int timeout_ms)
{
    unsigned char *p = data;
    while (length) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int ready = poll(&pfd, 1, timeout_ms);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t n = ready < 0 ? -1 : recv(fd, p, length, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ECONNRESET;
            return -1;
        }
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

static int send_frame(int fd, const unsigned char *payload, size_t length)
{
    unsigned char header[4];
    put32(header, (uint32_t)length);
    return send_all(fd, header, 4) == 0 ? send_all(fd, payload, length) : -1;
}

/* Returns a malloc'ed payload and its length, or NULL with errno set. */
static unsigned char *recv_frame(int fd, size_t *length, int timeout_ms)
{
    unsigned char header[4];
    if (recv_all(fd, header, 4, timeout_ms) < 0)
        return NULL;
    *length = get32(header);
    if (*length > (64u << 20)) {
        errno = EPROTO;
        return NULL;
    }
    unsigned char *payload = malloc(*length ? *length : 1);
    if (payload == NULL)
        return NULL;
    if (recv_all(fd, payload, *length, timeout_ms) < 0) {
        int saved = errno;
        free(payload);
        errno = saved;
        return NULL;
    }
    return payload;
}

/* Connects to the nexus and asks for the device; returns the socket, or -1 with errno. */
static int open_fake(const struct device *d, int flags)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0), 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    memcpy(address.sun_path, d->socket_path, strlen(d->socket_path) + 1);  /* fits: map reader */
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        /* No nexus behind the path: the node exists but no driver answers it. */
        RESOLVE(close)(fd);
        errno = ENXIO;
        return -1;
    }
    size_t id_length = strlen(d->id);
    unsigned char request[1 + sizeof d->id];
    request[0] = 'O';
    memcpy(request + 1, d->id, id_length);
    size_t reply_length = 0;
    unsigned char *reply = NULL;
    if (send_frame(fd, request, 1 + id_length) == 0)
        reply = recv_frame(fd, &reply_length, OPEN_TIMEOUT_MS);
    int error = reply == NULL ? ENXIO
              : (reply_length != 5 || reply[0] != 'o') ? EPROTO : (int)get32(reply + 1);
    free(reply);
    if (error) {
        RESOLVE(close)(fd);
        errno = error;
        return -1;
    }
    remember_fd(fd, d);
    return fd;
}

static void fail_sg_io(sg_io_hdr_t *h, unsigned host_status)
{
    h->status = 0;
    h->masked_status = 0;
    h->sb_len_wr = 0;
    h->host_status = host_status;
    h->driver_status = 0;
    h->resid = (int)h->dxfer_len;
    h->info = SG_INFO_CHECK;
}

static int sg_io(int fd, sg_io_hdr_t *h)
{
    if (h->interface_id != 'S') {
        errno = ENOSYS;  /* what the sg driver answers to a non-v3 header */
        return -1;
    }
    if (h->iovec_count != 0 || h->cmd_len < 6 || h->cmd_len > 16 || h->cmdp == NULL) {
        errno = EINVAL;  /* scatter-gather lists are not forwarded */
        return -1;
    }
    unsigned direction = 0;
    size_t out_length = 0, in_length = 0;
    switch (h->dxfer_direction) {
    case SG_DXFER_NONE: break;
    case SG_DXFER_TO_DEV: direction = 2; out_length = h->dxfer_len; break;
    case SG_DXFER_FROM_DEV:
    case SG_DXFER_TO_FROM_DEV: direction = 1; in_length = h->dxfer_len; break;
    default: errno = EINVAL; return -1;
    }
    if ((out_length || in_length) && h->dxferp == NULL) {
        errno = EFAULT;
        return -1;
    }
    unsigned timeout_ms = h->timeout ? h->timeout : DEFAULT_SG_TIMEOUT_MS;
    size_t request_length = 1 + 4 + 1 + 4 + 1 + h->cmd_len + out_length;
    unsigned char *request = malloc(request_length);
    if (request == NULL) {
        errno = ENOMEM;
        return -1;
    }
    unsigned char *p = request;
    *p++ = 'X';
    put32(p, timeout_ms); p += 4;
    *p++ = (unsigned char)direction;
    put32(p, (uint32_t)in_length); p += 4;
    *p++ = h->cmd_len;
    memcpy(p, h->cmdp, h->cmd_len); p += h->cmd_len;
    if (out_length)
        memcpy(p, h->dxferp, out_length);
    int sent = send_frame(fd, request, request_length);
    free(request);
    size_t reply_length = 0;
    unsigned char *reply = NULL;
    if (sent == 0) {
        int wait_ms = timeout_ms > INT_MAX - NEXUS_MARGIN_MS ? INT_MAX
                                                             : (int)timeout_ms + NEXUS_MARGIN_MS;
        reply = recv_frame(fd, &reply_length, wait_ms);
    }
    if (reply == NULL) {
        /* The nexus is gone or silent: like a path whose transport died under the command. */
        fail_sg_io(h, errno == ETIMEDOUT ? DID_TIME_OUT : DID_NO_CONNECT);
        return 0;
    }
    if (reply_length < 8 || reply[0] != 'x' || reply_length < 8u + reply[7]) {
        free(reply);
        errno = EPROTO;
        return -1;
    }
    unsigned outcome = reply[1], sense_length = reply[7];
    h->duration = get32(reply + 3);
    if (outcome != 0) {
        fail_sg_io(h, outcome == 2 ? DID_TIME_OUT : DID_TRANSPORT_FAILFAST);
        free(reply);
        return 0;
    }
    const unsigned char *sense = reply + 8;
    const unsigned char *data = sense + sense_length;
    size_t data_length = reply_length - 8 - sense_length;
    if (data_length > in_length)
        data_length = in_length;
    if (data_length)
        memcpy(h->dxferp, data, data_length);
    size_t sense_copied = sense_length < h->mx_sb_len ? sense_length : h->mx_sb_len;
    if (sense_copied && h->sbp)
        memcpy(h->sbp, sense, sense_copied);
    h->status = reply[2];
    h->masked_status = (reply[2] >> 1) & 0x7f;
    h->msg_status = 0;
    h->sb_len_wr = h->sbp ? (unsigned char)sense_copied : 0;
    h->host_status = 0;
    h->driver_status = sense_length ? DRIVER_SENSE : 0;
    h->resid = (int)(in_length - data_length);
    h->info = (h->status || h->driver_status) ? SG_INFO_CHECK : 0;
    free(reply);
    return 0;
}

/* ---- open / close -------------------------------------------------------------------- */

/* A path looked up from the working directory or the root, as the map's paths are. */
static int plain_lookup(int dirfd, const char *path)
{
    return dirfd == AT_FDCWD || (path && path[0] == '/');
}

/* Every real open passes through here, so a number reused after a close that bypassed our
 * close() (close_range, fclose of an fdopen'ed stream) is never mistaken for a fake fd. */
static int forget_on_success(int fd)
{
    if (fd >= 0)
        remember_fd(fd, NULL);
    return fd;
}

static mode_t mode_argument(int flags, va_list args)
{
    return (flags & (O_CREAT | __O_TMPFILE)) ? (mode_t)va_arg(args, int) : 0;
}

/* open/open64 and openat/openat64 differ only in the libc function they fall back to. */
#define OPEN_VARIADIC(name)                                                                \
    int name(const char *path, int flags, ...)                                             \
    {                                                                                      \
        const struct device *d = device_for_path(path);                                    \
        if (d)                                                                             \
            return open_fake(d, flags);                                                    \
        va_list args;                                                                      \
        va_start(args, flags);                                                             \
        mode_t mode = mode_argument(flags, args);                                          \
        va_end(args);                                                                      \
        return forget_on_success(RESOLVE(name)(path, flags, mode));                        \
    }
OPEN_VARIADIC(open)
OPEN_VARIADIC(open64)

#define OPENAT_VARIADIC(name)                                                              \
    int name(int dirfd, const char *path, int flags, ...)                                  \
    {                                                                                      \
        const struct device *d = plain_lookup(dirfd, path) ? device_for_path(path) : NULL; \
        if (d)                                                                             \
            return open_fake(d, flags);                                                    \
        va_list args;                                                                      \
        va_start(args, flags);                                                             \
        mode_t mode = mode_argument(flags, args);                                          \
        va_end(args);                                                                      \
        return forget_on_success(RESOLVE(name)(dirfd, path, flags, mode));                 \
    }
OPENAT_VARIADIC(openat)
OPENAT_VARIADIC(openat64)

/* The _FORTIFY_SOURCE entry points (sg3_utils' libsgutils2 calls __open64_2). */
#define OPEN_FORTIFIED(name)                                                               \
    int name(const char *path, int flags)                                                  \
    {                                                                                      \
        const struct device *d = device_for_path(path);                                    \
        return d ? open_fake(d, flags) : forget_on_success(RESOLVE(name)(path, flags));    \
    }
OPEN_FORTIFIED(__open_2)
OPEN_FORTIFIED(__open64_2)

int close(int fd)
{
    remember_fd(fd, NULL);
    return RESOLVE(close)(fd);
}

/* ---- ioctl --------------------------------------------------------------------------- */

int ioctl(int fd, unsigned long request, ...)
{
    va_list args;
    va_start(args, request);
    void *argument = va_arg(args, void *);
    va_end(args);
    const struct device *d = device_for_fd(fd);
    if (d == NULL)
        return RESOLVE(ioctl)(fd, request, argument);
    switch (request) {
    case SG_GET_VERSION_NUM:
        *(int *)argument = SG_VERSION;
        return 0;
    case SG_IO:
        return sg_io(fd, argument);
    default:
        errno = ENOTTY;
        return -1;
    }
}

/* ---- the stat family ----------------------------------------------------------------- */

/* What a device node in devtmpfs looks like: the fields sg3_utils and Python read. */
#define FILL_STAT(st, d)                                                                   \
    do {                                                                                   \
        memset((st), 0, sizeof *(st));                                                     \
        (st)->st_dev = makedev(0, 5);                                                      \
        (st)->st_ino = 100000 + (unsigned)((d) - devices);                                 \
        (st)->st_nlink = 1;                                                                \
        (st)->st_mode = ((d)->kind == KIND_SG ? S_IFCHR : S_IFBLK) | 0660;                 \
        (st)->st_rdev = (d)->kind == KIND_SG ? makedev(SG_MAJOR, (d)->minor)               \
                                             : makedev(SD_MAJOR, (d)->minor * 16);         \
        (st)->st_blksize = 4096;                                                           \
    } while (0)

static const struct device *device_for_at(int dirfd, const char *path, int flags)
{
    if ((flags & AT_EMPTY_PATH) && path && !*path)
        return device_for_fd(dirfd);
    return plain_lookup(dirfd, path) ? device_for_path(path) : NULL;
}

/* One wrapper shape for every stat entry point: find the device (by path, fd or dirfd +
 * path), fill in a device node, or fall through to libc with the same arguments. */
#define STAT_WRAPPER(name, lookup, params, args)                                           \
    int name params                                                                        \
    {                                                                                      \
        const struct device *d = lookup;                                                   \
        if (!d)                                                                            \
            return RESOLVE(name) args;                                                     \
        FILL_STAT(st, d);                                                                  \
        return 0;                                                                          \
    }
#define BY_PATH device_for_path(path)
#define BY_FD device_for_fd(fd)
#define BY_AT device_for_at(dirfd, path, flags)

STAT_WRAPPER(stat, BY_PATH, (const char *path, struct stat *st), (path, st))
STAT_WRAPPER(stat64, BY_PATH, (const char *path, struct stat64 *st), (path, st))
STAT_WRAPPER(lstat, BY_PATH, (const char *path, struct stat *st), (path, st))
STAT_WRAPPER(lstat64, BY_PATH, (const char *path, struct stat64 *st), (path, st))
STAT_WRAPPER(fstat, BY_FD, (int fd, struct stat *st), (fd, st))
STAT_WRAPPER(fstat64, BY_FD, (int fd, struct stat64 *st), (fd, st))
STAT_WRAPPER(fstatat, BY_AT, (int dirfd, const char *path, struct stat *st, int flags),
             (dirfd, path, st, flags))
STAT_WRAPPER(fstatat64, BY_AT, (int dirfd, const char *path, struct stat64 *st, int flags),
             (dirfd, path, st, flags))
/* The pre-2.33 glibc entry points, still called by binaries built against older glibc. */
STAT_WRAPPER(__xstat, BY_PATH, (int v, const char *path, struct stat *st), (v, path, st))
STAT_WRAPPER(__xstat64, BY_PATH, (int v, const char *path, struct stat64 *st), (v, path, st))
STAT_WRAPPER(__lxstat, BY_PATH, (int v, const char *path, struct stat *st), (v, path, st))
STAT_WRAPPER(__lxstat64, BY_PATH, (int v, const char *path, struct stat64 *st), (v, path, st))
STAT_WRAPPER(__fxstat, BY_FD, (int v, int fd, struct stat *st), (v, fd, st))
STAT_WRAPPER(__fxstat64, BY_FD, (int v, int fd, struct stat64 *st), (v, fd, st))
STAT_WRAPPER(__fxstatat, BY_AT, (int v, int dirfd, const char *path, struct stat *st, int flags),
             (v, dirfd, path, st, flags))
STAT_WRAPPER(__fxstatat64, BY_AT,
             (int v, int dirfd, const char *path, struct stat64 *st, int flags),
             (v, dirfd, path, st, flags))

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *stx)
{
    const struct device *d = device_for_at(dirfd, path, flags);
    if (!d)
        return RESOLVE(statx)(dirfd, path, flags, mask, stx);
    struct stat st;
    FILL_STAT(&st, d);
    memset(stx, 0, sizeof *stx);
    stx->stx_mask = STATX_BASIC_STATS;
    stx->stx_blksize = (uint32_t)st.st_blksize;
    stx->stx_nlink = (uint32_t)st.st_nlink;
    stx->stx_mode = (uint16_t)st.st_mode;
    stx->stx_ino = st.st_ino;
    stx->stx_rdev_major = major(st.st_rdev);
    stx->stx_rdev_minor = minor(st.st_rdev);
    stx->stx_dev_major = major(st.st_dev);
    stx->stx_dev_minor = minor(st.st_dev);
    return 0;
}
