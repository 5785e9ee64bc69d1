/* kubeauth.h: how the kubernetes provider reaches and authenticates to an
 * API server: a kubeconfig file (a context's cluster server, certificate
 * authority, user token / token file / client certificate) or the in-cluster
 * service account (token, ca.crt, namespace, KUBERNETES_SERVICE_HOST/PORT),
 * and re-reading a token file when it changes (service-account tokens
 * rotate). Does no network I/O and never logs; the TLS material is held in
 * memory (zeroed when freed) so requests never read files. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define KUBEAUTH_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBEAUTH_FILE_MAX (1u << 20)    /* kubeconfig, certificates, keys, tokens */

struct kubeauth {
        char *server;           /* "https://host:port", no trailing '/' */
        char *ca_pem;           /* CA bundle, or NULL: the system's */
        size_t ca_pem_len;
        char *cert_pem;         /* client certificate, or NULL */
        size_t cert_pem_len;
        char *key_pem;          /* its key (secret), or NULL */
        size_t key_pem_len;
        char *token;            /* bearer token (secret), or NULL */
        char *token_file;       /* where token comes from, re-read when it changes; or NULL */
        char *namespace;        /* the context's or service account's, or NULL */
        bool insecure;          /* insecure-skip-tls-verify */
        /* token_file as last read. */
        struct timespec token_mtime;
        off_t token_size;
        ino_t token_ino;
};

/* Reads kubeconfig path and resolves context (NULL: current-context) into
 * *ret (owned; kubeauth_free). Relative file names inside are taken from
 * the kubeconfig's folder. Returns 0, -ENOMEM, or another -errno with a
 * sentence naming the file and the field in err[n]. */
int kubeauth_load_kubeconfig(const char *path, const char *context, struct kubeauth **ret,
                             char *err, size_t n);

/* In-cluster: sa_dir (NULL: KUBEAUTH_SA_DIR) holds token, ca.crt and
 * namespace (optional); the server comes from KUBERNETES_SERVICE_HOST and
 * KUBERNETES_SERVICE_PORT. Same returns as kubeauth_load_kubeconfig(). */
int kubeauth_load_incluster(const char *sa_dir, struct kubeauth **ret, char *err, size_t n);

/* Re-reads token_file when its inode, size or mtime changed, or always
 * with force (after a 401). Returns 1 when the token changed, 0 when not
 * (or there is no token file), -errno when it cannot be read (the old
 * token is kept). */
int kubeauth_refresh(struct kubeauth *a, bool force);

/* Accepts NULL. */
void kubeauth_free(struct kubeauth *a);
