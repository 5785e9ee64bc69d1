/* fsutil.h: small, bounded file-system helpers (read with a size cap, atomic
 * 0600 writes, recursive mkdir/remove). Never logs; returns -errno. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Reads the whole file into a NUL-terminated malloc'd buffer (caller frees).
 * Fails with -EFBIG when the file is larger than max bytes. */
int fs_read_file(const char *path, size_t max, char **ret, size_t *ret_len);

/* The same for a file that must be a regular one (a secret, a setting):
 * -EBADFD for anything else, without blocking on a FIFO. */
int fs_read_regular(const char *path, size_t max, char **ret, size_t *ret_len);

/* Writes data to path atomically (temp file in the same folder, fsync,
 * rename) with mode 0600 from creation, so a secret is never readable by
 * others even for an instant. */
int fs_write_file_0600(const char *path, const void *data, size_t len);

/* Writes a secret file that must never be readable by others: created
 * with O_EXCL and mode 0600 (replacing any file at path first), written and
 * closed, without fsync — for files that need not survive a machine crash
 * (a runner token whose worker would not survive it either). */
int fs_write_secret(const char *path, const void *data, size_t len);

/* mkdir -p with the given mode for every created component. */
int fs_mkdir_p(const char *path, mode_t mode);

/* rm -rf that does not follow symlinks. A missing path is success. */
int fs_rm_rf(const char *path);

/* Takes an exclusive, non-blocking lock on path (created 0600) and writes
 * this process's pid into it, for "one owner of a folder at a time". The
 * lock lives as long as *ret_fd stays open (close-on-exec, so children never
 * hold it). -EWOULDBLOCK when another process holds it; *ret_holder then
 * names its pid as written there (0 when unreadable). */
int fs_lock_pidfile(const char *path, int *ret_fd, long *ret_holder);
