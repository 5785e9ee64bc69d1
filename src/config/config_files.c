/* config_files.c: what the configuration refers to outside itself: token
 * files and variables (read with type, mode and content checks, registered
 * for redaction), ca_file, state_dir and the accounts of local providers.
 * Never blocks on a FIFO; never keeps a token it does not hand out. */
#include "config/config.h"
#include "config/config_internal.h"

#include "util/log.h"
#include "util/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Why a referenced file cannot be used, beyond an errno: set by the
 * readers below, turned into a message by token_error() or check_ca_file(). */
struct fileproblem {
        int err;                /* -errno, or -EINVAL with why set */
        const char *why;        /* "is a FIFO, not a regular file", ... */
        bool shared;            /* readable by group or others: a warning */
        unsigned mode;          /* permission bits, for the messages */
};

static const char *file_type_name(mode_t m)
{
        if (S_ISFIFO(m))
                return "is a FIFO, not a regular file";
        if (S_ISCHR(m))
                return "is a character device, not a regular file";
        if (S_ISBLK(m))
                return "is a block device, not a regular file";
        if (S_ISSOCK(m))
                return "is a socket, not a regular file";
        return "is not a regular file";
}

/* Opens a file the configuration refers to. O_NONBLOCK so that a FIFO
 * without a writer cannot hang `check`; the type is checked on the open fd
 * so it is the file that will be read. Returns the fd or -1 with *pb set. */
static int open_regular(const char *path, struct fileproblem *pb, struct stat *ret_st)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

        if (fd < 0) {
                pb->err = -errno;
                return -1;
        }
        if (fstat(fd, ret_st) < 0) {
                pb->err = -errno;
                close(fd);
                return -1;
        }
        pb->mode = (unsigned)(ret_st->st_mode & 07777);
        if (S_ISDIR(ret_st->st_mode)) {
                pb->err = -EISDIR;
                close(fd);
                return -1;
        }
        if (!S_ISREG(ret_st->st_mode)) {
                pb->err = -EINVAL;
                pb->why = file_type_name(ret_st->st_mode);
                close(fd);
                return -1;
        }
        return fd;
}

/* Checks and trims a token read from a file or a variable. Trailing
 * whitespace (the newline editors add) is dropped; anything else that is
 * not a printable, space-free single line would end up in an HTTP header
 * or fail as "unauthorized" far from its cause. Returns NULL or why not. */
static const char *token_text_problem(char *buf, size_t *len, int *ret_err)
{
        size_t n = *len;

        *ret_err = -EINVAL;
        if (memchr(buf, '\0', n))
                return "contains a NUL byte; it must hold the token alone, as text";
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                         buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                buf[--n] = '\0';
        *len = n;
        if (n == 0) {
                *ret_err = -ENODATA;
                return "is empty";
        }
        if (memchr(buf, '\n', n) || memchr(buf, '\r', n))
                return "has more than one line; it must hold the token alone";
        if (buf[0] == ' ' || buf[0] == '\t')
                return "starts with whitespace; it must hold the token alone";
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f)
                        return "contains a space or a control character; a token has none";
        return NULL;
}

/* Reads a token file: a regular file, not writable by others, at most
 * SECRET_MAX bytes. Returns 0 and the trimmed token (registered for
 * redaction; free with secret_free), or fills *pb. pb->shared is set in
 * both cases when group or others may read the file. */
static int read_token_file(const char *path, char **ret, struct fileproblem *pb)
{
        char *buf = NULL;
        size_t len = 0;
        struct stat st;
        int fd, err, r;
        const char *why;

        fd = open_regular(path, pb, &st);
        if (fd < 0)
                return pb->err;
        if (st.st_mode & S_IWOTH) {
                /* Anyone could swap the token for their own. */
                pb->err = -EPERM;
                pb->why = "is writable by every user";
                r = pb->err;
                goto out;
        }
        pb->shared = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
        buf = malloc(SECRET_MAX + 2);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        for (;;) {
                ssize_t rd = read(fd, buf + len, SECRET_MAX + 1 - len);
                if (rd < 0 && errno == EINTR)
                        continue;
                if (rd < 0) {
                        pb->err = r = -errno;
                        goto out;
                }
                if (rd == 0)
                        break;
                len += (size_t)rd;
                if (len > SECRET_MAX) {
                        pb->err = r = -EFBIG;
                        goto out;
                }
        }
        buf[len] = '\0';
        why = token_text_problem(buf, &len, &err);
        if (why) {
                pb->err = r = err;
                pb->why = why;
                goto out;
        }
        log_redact_add(buf);
        *ret = buf;
        buf = NULL;
        r = 0;
out:
        if (buf) {
                explicit_bzero(buf, SECRET_MAX + 2);
                free(buf);
        }
        close(fd);
        return r;
}

static int read_token_env(const char *name, char **ret, struct fileproblem *pb)
{
        const char *v = getenv(name);
        size_t len;
        const char *why;
        char *buf;
        int err;

        if (!v)
                return pb->err = -ENOENT;
        len = strlen(v);
        if (len > SECRET_MAX)
                return pb->err = -EFBIG;
        buf = strdup(v);
        if (!buf)
                return -ENOMEM;
        why = token_text_problem(buf, &len, &err);
        if (why) {
                secret_free(buf);
                pb->why = why;
                return pb->err = err;
        }
        log_redact_add(buf);
        *ret = buf;
        return 0;
}

static void token_error(struct errlist *errs, const struct config_forge *f,
                        const struct fileproblem *pb)
{
        const struct config_pos *p = &f->token_pos;
        char q1[QBUF], q2[QBUF];

        config__quote(q1, sizeof(q1), f->name);
        if (f->token_file) {
                config__quote(q2, sizeof(q2), f->token_file);
                if (pb->err == -EPERM && pb->why)
                        config__errlist_add(errs, p->line, p->col,
                                            "forge %s: token_file %s %s (mode %04o), so anyone could replace the token; chmod 600 it",
                                            q1, q2, pb->why, pb->mode);
                else if (pb->why)
                        config__errlist_add(errs, p->line, p->col, "forge %s: token_file %s %s", q1, q2, pb->why);
                else if (pb->err == -EFBIG)
                        config__errlist_add(errs, p->line, p->col,
                                            "forge %s: token_file %s is larger than %d bytes", q1, q2, SECRET_MAX);
                else
                        config__errlist_add(errs, p->line, p->col, "forge %s: token_file %s: %s",
                                            q1, q2, strerror(-pb->err));
        } else {
                config__quote(q2, sizeof(q2), f->token_env);
                if (pb->err == -ENOENT)
                        config__errlist_add(errs, p->line, p->col,
                                            "forge %s: token_env: environment variable %s is not set", q1, q2);
                else if (pb->why)
                        config__errlist_add(errs, p->line, p->col,
                                            "forge %s: token_env: environment variable %s %s", q1, q2, pb->why);
                else if (pb->err == -EFBIG)
                        config__errlist_add(errs, p->line, p->col,
                                            "forge %s: token_env: environment variable %s is longer than %d bytes",
                                            q1, q2, SECRET_MAX);
                else
                        config__errlist_add(errs, p->line, p->col, "forge %s: token_env: %s: %s",
                                            q1, q2, strerror(-pb->err));
        }
}

/* Loads one forge's token, adding its error or its warning to errs.
 * Returns 0, -ENOMEM, or another -errno (reported). */
static int load_token(const struct config_forge *f, struct errlist *errs, char **ret)
{
        struct fileproblem pb = { 0 };
        int r;

        if (f->token_file)
                r = read_token_file(f->token_path, ret, &pb);
        else if (f->token_env)
                r = read_token_env(f->token_env, ret, &pb);
        else
                r = pb.err = -ENOENT;
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                token_error(errs, f, &pb);
                return r;
        }
        if (pb.shared) {
                char q1[QBUF], q2[QBUF];
                config__errlist_warn(errs, f->token_pos.line, f->token_pos.col,
                                     "forge %s: token_file %s can be read by other users (mode %04o); chmod 600 it",
                                     config__quote(q1, sizeof(q1), f->name),
                                     config__quote(q2, sizeof(q2), f->token_file), pb.mode);
        }
        return 0;
}

static void check_ca_file(const struct config_forge *f, struct errlist *errs)
{
        struct fileproblem pb = { 0 };
        struct stat st;
        char q1[QBUF], q2[QBUF];
        int fd = open_regular(f->ca_path, &pb, &st);

        if (fd >= 0) {
                close(fd);
                return;
        }
        config__quote(q1, sizeof(q1), f->name);
        config__quote(q2, sizeof(q2), f->ca_file);
        if (pb.why)
                config__errlist_add(errs, f->ca_pos.line, f->ca_pos.col, "forge %s: ca_file %s %s",
                                    q1, q2, pb.why);
        else
                config__errlist_add(errs, f->ca_pos.line, f->ca_pos.col, "forge %s: ca_file %s: %s",
                                    q1, q2, strerror(-pb.err));
}

static void check_state_dir(const struct config *cfg, struct errlist *errs)
{
        const struct config_pos *p = &cfg->state_pos;
        struct stat st;
        char q[QBUF];

        if (!cfg->state_path)
                return;
        config__quote(q, sizeof(q), cfg->state_dir);
        if (stat(cfg->state_path, &st) < 0) {
                if (errno != ENOENT)
                        config__errlist_add(errs, p->line, p->col, "state_dir %s: %s", q, strerror(errno));
                return;
        }
        if (!S_ISDIR(st.st_mode))
                config__errlist_add(errs, p->line, p->col, "state_dir %s is not a folder", q);
        else if (st.st_mode & S_IWOTH)
                config__errlist_add(errs, p->line, p->col,
                                    "state_dir %s is writable by every user (mode %04o), so anyone could replace the state database or instance files; chmod 700 it or use a folder of its own",
                                    q, (unsigned)(st.st_mode & 07777));
}

int config_check_state_dir(const struct config *cfg, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        int r = 0;

        check_state_dir(cfg, &errs);
        return config__errlist_finish(&errs, cfg->path, reterr_diag, r);
}

/* A named account must exist where the daemon runs; numeric ids need no
 * entry in the user database. */
static int check_accounts(const struct config_provider *p, struct errlist *errs)
{
        char q1[QBUF], q2[QBUF];
        bool numeric;

        if (p->type != CONFIG_PROVIDER_LOCAL)
                return 0;
        config__quote(q1, sizeof(q1), p->name);
        if (p->local.user && config__account_ok(p->local.user, &numeric) && !numeric) {
                errno = 0;
                if (!getpwnam(p->local.user)) {
                        if (errno == ENOMEM)
                                return -ENOMEM;
                        config__errlist_add(errs, p->local.user_pos.line, p->local.user_pos.col,
                                            "provider %s: user %s does not exist on this machine%s%s",
                                            q1, config__quote(q2, sizeof(q2), p->local.user),
                                            errno ? ": " : "", errno ? strerror(errno) : "");
                }
        }
        if (p->local.group && config__account_ok(p->local.group, &numeric) && !numeric) {
                errno = 0;
                if (!getgrnam(p->local.group)) {
                        if (errno == ENOMEM)
                                return -ENOMEM;
                        config__errlist_add(errs, p->local.group_pos.line, p->local.group_pos.col,
                                            "provider %s: group %s does not exist on this machine%s%s",
                                            q1, config__quote(q2, sizeof(q2), p->local.group),
                                            errno ? ": " : "", errno ? strerror(errno) : "");
                }
        }
        return 0;
}

int config_check_files(const struct config *cfg, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        int r = 0;

        for (size_t i = 0; i < cfg->n_forges; i++) {
                const struct config_forge *f = &cfg->forges[i];
                char *tok = NULL;

                if (load_token(f, &errs, &tok) == -ENOMEM) {
                        r = -ENOMEM;
                        break;
                }
                secret_free(tok);
                if (f->ca_path)
                        check_ca_file(f, &errs);
        }
        if (r == 0)
                check_state_dir(cfg, &errs);
        for (size_t i = 0; r == 0 && i < cfg->n_providers; i++)
                r = check_accounts(&cfg->providers[i], &errs);
        return config__errlist_finish(&errs, cfg->path, reterr_diag, r);
}

int config_load_tokens(struct config *cfg, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        int r = 0;

        for (size_t i = 0; i < cfg->n_forges; i++) {
                struct config_forge *f = &cfg->forges[i];
                char *tok = NULL;
                int lr = load_token(f, &errs, &tok);

                if (lr == -ENOMEM) {
                        r = lr;
                        break;
                }
                if (lr < 0)
                        continue;
                secret_free(f->token);
                f->token = tok;
        }
        if (r == 0 && (config__errlist_failed(&errs)))
                r = -EINVAL;
        if (r < 0)
                for (size_t i = 0; i < cfg->n_forges; i++) {
                        secret_free(cfg->forges[i].token);
                        cfg->forges[i].token = NULL;
                }
        return config__errlist_finish(&errs, cfg->path, reterr_diag, r);
}
