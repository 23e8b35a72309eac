/* fsshim: an LD_PRELOAD library that watches one directory's file I/O.
 *
 * Power-loss and full-disk tests run the real nfo code and the real SQLite
 * library; this shim sits between them and the kernel.  For files under
 * FSSHIM_DIR it can
 *
 *   - log (FSSHIM_LOG=path) every write, truncate, fsync/fdatasync, create,
 *     unlink and rename, with the written bytes, so that tests/durability/
 *     powerloss.py can rebuild what the disk could hold after a power cut at
 *     any point of the run (only what an fsync covered is certain);
 *   - log the lines written to FSSHIM_MARKS (the writer's BEGIN/ACK markers)
 *     into the same sequence, so a cut knows what was acknowledged before it;
 *   - fail writes with ENOSPC while the file FSSHIM_ENOSPC exists ("disk
 *     full"); if that file contains "fsync", writes succeed (into the page
 *     cache) and fsync/fdatasync fail with EIO instead ("fsync-once": the
 *     next one only, then the shim removes the file).
 *
 * Record format (little endian): u8 type, 3 pad bytes, u32 payload length,
 * payload.  Types: 'O' open (u64 ino, u8 created, u8 is_dir, u8 trunc, path),
 * 'W' write (u64 ino, u64 offset, data), 'T' truncate (u64 ino, u64 length),
 * 'S' sync (u64 ino), 'U' unlink (path), 'R' rename (u32 old length, old, new),
 * 'D' mkdir (u64 ino, path), 'M' marker (data), 'X' unsupported call (name).
 * Only the process that loaded the shim first logs (a forked child does not).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 65536

enum { K_NONE = 0, K_FILE = 1, K_DIR = 2, K_MARKS = 3 };

static struct {
    unsigned char kind;
    unsigned char shm;
    uint64_t ino;
} fds[MAX_FDS];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char watch_dir[PATH_MAX];
static size_t watch_len;
static char marks_path[PATH_MAX];
static char enospc_flag[PATH_MAX];
static int log_fd = -1;
static pid_t owner_pid;
static int ready;

static int (*r_open)(const char *, int, ...);
static int (*r_open64)(const char *, int, ...);
static int (*r_openat)(int, const char *, int, ...);
static int (*r_openat64)(int, const char *, int, ...);
static int (*r_close)(int);
static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_writev)(int, const struct iovec *, int);
static ssize_t (*r_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*r_pwrite64)(int, const void *, size_t, off_t);
static int (*r_fsync)(int);
static int (*r_fdatasync)(int);
static int (*r_ftruncate)(int, off_t);
static int (*r_ftruncate64)(int, off_t);
static int (*r_unlink)(const char *);
static int (*r_unlinkat)(int, const char *, int);
static int (*r_rename)(const char *, const char *);
static int (*r_renameat)(int, const char *, int, const char *);
static int (*r_mkdir)(const char *, mode_t);

static void *sym(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "fsshim: no %s\n", name);
        abort();
    }
    return p;
}

static void copy_env(char *dst, const char *name) {
    const char *v = getenv(name);
    dst[0] = 0;
    if (v && strlen(v) < PATH_MAX) strcpy(dst, v);
}

static void resolve(void) {
    r_open = sym("open");
    r_open64 = sym("open64");
    r_openat = sym("openat");
    r_openat64 = sym("openat64");
    r_close = sym("close");
    r_write = sym("write");
    r_writev = sym("writev");
    r_pwrite = sym("pwrite");
    r_pwrite64 = sym("pwrite64");
    r_fsync = sym("fsync");
    r_fdatasync = sym("fdatasync");
    r_ftruncate = sym("ftruncate");
    r_ftruncate64 = sym("ftruncate64");
    r_unlink = sym("unlink");
    r_unlinkat = sym("unlinkat");
    r_rename = sym("rename");
    r_renameat = sym("renameat");
    r_mkdir = sym("mkdir");
}

#define RESOLVED() do { if (!r_mkdir) resolve(); } while (0)

__attribute__((constructor)) static void init(void) {
    RESOLVED();
    copy_env(watch_dir, "FSSHIM_DIR");
    while ((watch_len = strlen(watch_dir)) > 1 && watch_dir[watch_len - 1] == '/')
        watch_dir[watch_len - 1] = 0;
    copy_env(marks_path, "FSSHIM_MARKS");
    copy_env(enospc_flag, "FSSHIM_ENOSPC");
    owner_pid = getpid();
    const char *lp = getenv("FSSHIM_LOG");
    if (lp && *lp) {
        log_fd = r_open(lp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (log_fd < 0) {
            perror("fsshim: log");
            abort();
        }
    }
    ready = 1;
}

static int logging(void) { return ready && log_fd >= 0 && getpid() == owner_pid; }

/* One record, written with one write() under the lock. */
static void emit(char type, const void *a, size_t alen, const void *b, size_t blen) {
    if (!logging()) return;
    size_t total = 8 + alen + blen;
    char stackbuf[8192];
    char *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (!buf) abort();
    uint32_t len = (uint32_t)(alen + blen);
    buf[0] = type;
    buf[1] = buf[2] = buf[3] = 0;
    memcpy(buf + 4, &len, 4);
    if (alen) memcpy(buf + 8, a, alen);
    if (blen) memcpy(buf + 8 + alen, b, blen);
    int saved = errno;
    size_t done = 0;
    while (done < total) {
        ssize_t n = r_write(log_fd, buf + done, total - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("fsshim: writing the log");
            abort();
        }
        done += (size_t)n;
    }
    errno = saved;
    if (buf != stackbuf) free(buf);
}

/* The absolute form of path (relative to dirfd or the cwd); 0 if it is too long. */
static int absolute(int dirfd, const char *path, char *out) {
    if (path[0] == '/') {
        if (strlen(path) >= PATH_MAX) return 0;
        strcpy(out, path);
        return 1;
    }
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) return 0;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        if (n < 0) return 0;
        base[n] = 0;
    }
    if (strlen(base) + 1 + strlen(path) >= PATH_MAX) return 0;
    sprintf(out, "%s/%s", base, path);
    return 1;
}

static int watched(const char *abs) {
    if (!watch_len) return 0;
    return strncmp(abs, watch_dir, watch_len) == 0 &&
           (abs[watch_len] == 0 || abs[watch_len] == '/');
}

static int is_shm(const char *abs) {
    size_t n = strlen(abs);
    return n > 4 && strcmp(abs + n - 4, "-shm") == 0;
}

/* 0: normal; 1: the disk is full (writes fail with ENOSPC); 2: fsync fails with EIO
 * (3: this once, and the flag file is removed). */
static int fault(void) {
    if (!enospc_flag[0]) return 0;
    int fd = r_open(enospc_flag, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    r_close(fd);
    if (n >= 10 && strncmp(buf, "fsync-once", 10) == 0) return 3;
    return n >= 5 && strncmp(buf, "fsync", 5) == 0 ? 2 : 1;
}

static int tracked(int fd) {
    return fd >= 0 && fd < MAX_FDS && fds[fd].kind != K_NONE;
}

static int after_open(int dirfd, const char *path, int flags, int existed, int fd) {
    if (fd < 0 || fd >= MAX_FDS || !ready) return fd;
    char abs[PATH_MAX];
    if (!absolute(dirfd, path, abs)) return fd;
    int saved = errno;
    pthread_mutex_lock(&mu);
    fds[fd].kind = K_NONE;
    if (marks_path[0] && strcmp(abs, marks_path) == 0) {
        fds[fd].kind = K_MARKS;
    } else if (watched(abs)) {
        struct stat st;
        if (fstat(fd, &st) == 0) {
            unsigned char rec[11];
            uint64_t ino = (uint64_t)st.st_ino;
            fds[fd].kind = S_ISDIR(st.st_mode) ? K_DIR : K_FILE;
            fds[fd].shm = (unsigned char)is_shm(abs);
            fds[fd].ino = ino;
            memcpy(rec, &ino, 8);
            rec[8] = (unsigned char)((flags & O_CREAT) && !existed);
            rec[9] = (unsigned char)S_ISDIR(st.st_mode);
            rec[10] = (unsigned char)((flags & O_TRUNC) != 0 && !S_ISDIR(st.st_mode));
            emit('O', rec, sizeof rec, abs, strlen(abs));
        }
    }
    pthread_mutex_unlock(&mu);
    errno = saved;
    return fd;
}

static int existed_before(int dirfd, const char *path, int flags) {
    if (!(flags & O_CREAT)) return 1;
    struct stat st;
    return fstatat(dirfd, path, &st, 0) == 0;
}

#define OPEN_MODE(flags)                                                  \
    mode_t mode = 0;                                                      \
    if ((flags) & (O_CREAT | O_TMPFILE)) {                                \
        va_list ap;                                                       \
        va_start(ap, flags);                                              \
        mode = (mode_t)va_arg(ap, int);                                   \
        va_end(ap);                                                       \
    }

int open(const char *path, int flags, ...) {
    RESOLVED();
    OPEN_MODE(flags);
    int existed = existed_before(AT_FDCWD, path, flags);
    return after_open(AT_FDCWD, path, flags, existed, r_open(path, flags, mode));
}

int open64(const char *path, int flags, ...) {
    RESOLVED();
    OPEN_MODE(flags);
    int existed = existed_before(AT_FDCWD, path, flags);
    return after_open(AT_FDCWD, path, flags, existed, r_open64(path, flags, mode));
}

int openat(int dirfd, const char *path, int flags, ...) {
    RESOLVED();
    OPEN_MODE(flags);
    int existed = existed_before(dirfd, path, flags);
    return after_open(dirfd, path, flags, existed, r_openat(dirfd, path, flags, mode));
}

int openat64(int dirfd, const char *path, int flags, ...) {
    RESOLVED();
    OPEN_MODE(flags);
    int existed = existed_before(dirfd, path, flags);
    return after_open(dirfd, path, flags, existed, r_openat64(dirfd, path, flags, mode));
}

int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open64(path, flags); }
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char *path, int flags) {
    return openat64(dirfd, path, flags);
}

int close(int fd) {
    RESOLVED();
    if (fd >= 0 && fd < MAX_FDS) fds[fd].kind = K_NONE;
    return r_close(fd);
}

static void log_write(int fd, off_t offset, const void *buf, ssize_t n) {
    if (n <= 0) return;
    if (fds[fd].kind == K_MARKS) {
        emit('M', buf, (size_t)n, NULL, 0);
    } else if (fds[fd].kind == K_FILE) {
        uint64_t hdr[2] = {fds[fd].ino, (uint64_t)offset};
        emit('W', hdr, sizeof hdr, buf, (size_t)n);
    }
}

static int refuse_write(int fd) {
    if (fds[fd].kind == K_FILE && !fds[fd].shm && fault() == 1) {
        errno = ENOSPC;
        return 1;
    }
    return 0;
}

ssize_t write(int fd, const void *buf, size_t count) {
    RESOLVED();
    if (!tracked(fd)) return r_write(fd, buf, count);
    if (refuse_write(fd)) return -1;
    pthread_mutex_lock(&mu);
    off_t offset = 0;
    if (fds[fd].kind == K_FILE) {
        int fl = fcntl(fd, F_GETFL);
        struct stat st;
        offset = (fl >= 0 && (fl & O_APPEND) && fstat(fd, &st) == 0)
                     ? st.st_size : lseek(fd, 0, SEEK_CUR);
    }
    ssize_t n = r_write(fd, buf, count);
    int saved = errno;
    log_write(fd, offset, buf, n);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return n;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    if (!tracked(fd)) return r_writev(fd, iov, iovcnt);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
    char *flat = malloc(total ? total : 1);
    if (!flat) abort();
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(flat + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    ssize_t n = write(fd, flat, total);
    free(flat);
    return n;
}

static ssize_t do_pwrite(ssize_t (*real)(int, const void *, size_t, off_t), int fd,
                         const void *buf, size_t count, off_t offset) {
    RESOLVED();
    if (!tracked(fd)) return real(fd, buf, count, offset);
    if (refuse_write(fd)) return -1;
    pthread_mutex_lock(&mu);
    ssize_t n = real(fd, buf, count, offset);
    int saved = errno;
    log_write(fd, offset, buf, n);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    return do_pwrite(r_pwrite, fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    return do_pwrite(r_pwrite64, fd, buf, count, offset);
}

static int do_sync(int (*real)(int), int fd) {
    RESOLVED();
    if (!tracked(fd) || fds[fd].kind == K_MARKS) return real(fd);
    int f = fds[fd].kind == K_FILE && !fds[fd].shm ? fault() : 0;
    if (f == 3) r_unlink(enospc_flag);
    if (f >= 2) {
        errno = EIO;
        return -1;
    }
    pthread_mutex_lock(&mu);
    int rc = real(fd);
    int saved = errno;
    if (rc == 0) emit('S', &fds[fd].ino, 8, NULL, 0);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return rc;
}

int fsync(int fd) { return do_sync(r_fsync, fd); }
int fdatasync(int fd) { return do_sync(r_fdatasync, fd); }

static int do_truncate(int (*real)(int, off_t), int fd, off_t length) {
    RESOLVED();
    if (!tracked(fd) || fds[fd].kind != K_FILE) return real(fd, length);
    struct stat st;
    if (!fds[fd].shm && fstat(fd, &st) == 0 && length > st.st_size && fault() == 1) {
        errno = ENOSPC;
        return -1;
    }
    pthread_mutex_lock(&mu);
    int rc = real(fd, length);
    int saved = errno;
    if (rc == 0) {
        uint64_t rec[2] = {fds[fd].ino, (uint64_t)length};
        emit('T', rec, sizeof rec, NULL, 0);
    }
    pthread_mutex_unlock(&mu);
    errno = saved;
    return rc;
}

int ftruncate(int fd, off_t length) { return do_truncate(r_ftruncate, fd, length); }
int ftruncate64(int fd, off_t length) { return do_truncate(r_ftruncate64, fd, length); }

static void log_path(char type, int dirfd, const char *path) {
    char abs[PATH_MAX];
    if (ready && absolute(dirfd, path, abs) && watched(abs)) emit(type, abs, strlen(abs), NULL, 0);
}

int unlink(const char *path) {
    RESOLVED();
    pthread_mutex_lock(&mu);
    int rc = r_unlink(path);
    int saved = errno;
    if (rc == 0) log_path('U', AT_FDCWD, path);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return rc;
}

int unlinkat(int dirfd, const char *path, int flags) {
    RESOLVED();
    pthread_mutex_lock(&mu);
    int rc = r_unlinkat(dirfd, path, flags);
    int saved = errno;
    if (rc == 0) log_path('U', dirfd, path);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return rc;
}

static int do_rename(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
                     int rc) {
    char a[PATH_MAX], b[PATH_MAX];
    if (rc == 0 && ready && absolute(olddirfd, oldpath, a) && absolute(newdirfd, newpath, b) &&
        (watched(a) || watched(b))) {
        uint32_t alen = (uint32_t)strlen(a);
        char joined[2 * PATH_MAX + 4];
        memcpy(joined, &alen, 4);
        memcpy(joined + 4, a, alen);
        memcpy(joined + 4 + alen, b, strlen(b));
        emit('R', joined, 4 + alen + strlen(b), NULL, 0);
    }
    return rc;
}

int rename(const char *oldpath, const char *newpath) {
    RESOLVED();
    pthread_mutex_lock(&mu);
    int rc = r_rename(oldpath, newpath);
    int saved = errno;
    do_rename(AT_FDCWD, oldpath, AT_FDCWD, newpath, rc);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return rc;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    RESOLVED();
    pthread_mutex_lock(&mu);
    int rc = r_renameat(olddirfd, oldpath, newdirfd, newpath);
    int saved = errno;
    do_rename(olddirfd, oldpath, newdirfd, newpath, rc);
    pthread_mutex_unlock(&mu);
    errno = saved;
    return rc;
}

int mkdir(const char *path, mode_t mode) {
    RESOLVED();
    pthread_mutex_lock(&mu);
    int rc = r_mkdir(path, mode);
    int saved = errno;
    char abs[PATH_MAX];
    struct stat st;
    if (rc == 0 && ready && absolute(AT_FDCWD, path, abs) && watched(abs) &&
        stat(abs, &st) == 0) {
        uint64_t ino = (uint64_t)st.st_ino;
        emit('D', &ino, 8, abs, strlen(abs));
    }
    pthread_mutex_unlock(&mu);
    errno = saved;
    return rc;
}

/* Calls the log cannot describe: recorded so that the rebuild refuses the run. */
ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    static ssize_t (*real)(int, const struct iovec *, int, off_t);
    if (!real) real = sym("pwritev");
    if (tracked(fd)) emit('X', "pwritev", 7, NULL, 0);
    return real(fd, iov, iovcnt, offset);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags) {
    static ssize_t (*real)(int, const struct iovec *, int, off_t, int);
    if (!real) real = sym("pwritev2");
    if (tracked(fd)) emit('X', "pwritev2", 8, NULL, 0);
    return real(fd, iov, iovcnt, offset, flags);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    return pwritev(fd, iov, iovcnt, offset);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags) {
    return pwritev2(fd, iov, iovcnt, offset, flags);
}
