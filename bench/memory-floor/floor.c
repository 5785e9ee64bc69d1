/* floor.c: the resident memory of a process that loads and initialises the
 * libraries forgescale is built on, and does nothing else. It is the floor
 * under any forgescale figure: the daemon's own memory is what it adds on
 * top. Prints /proc/self/status's VmRSS, RssAnon and RssFile and each
 * mapped file's resident size, largest first. */
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <libfyaml.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void status_line(const char *key)
{
        char line[256];
        FILE *f = fopen("/proc/self/status", "re");

        if (!f)
                return;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, strlen(key)) == 0)
                        fputs(line, stdout);
        fclose(f);
}

struct lib {
        char path[256];
        long kib;
};

/* Sums the Rss of every mapping of each file. */
static void per_file(void)
{
        static struct lib libs[128];
        size_t n = 0, cur = (size_t)-1;
        char line[512];
        FILE *f = fopen("/proc/self/smaps", "re");

        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                char path[256] = "";
                unsigned long lo, hi;
                long kib;
                if (sscanf(line, "%lx-%lx", &lo, &hi) == 2) {
                        /* A mapping's header line; the path is its 6th field. */
                        (void)sscanf(line, "%*s %*s %*s %*s %*s %255s", path);
                        cur = (size_t)-1;
                        if (path[0] != '/')
                                continue;
                        for (size_t i = 0; i < n; i++)
                                if (strcmp(libs[i].path, path) == 0)
                                        cur = i;
                        if (cur == (size_t)-1 && n < 128) {
                                snprintf(libs[n].path, sizeof(libs[n].path), "%s", path);
                                libs[n].kib = 0;
                                cur = n++;
                        }
                } else if (cur != (size_t)-1 && sscanf(line, "Rss: %ld kB", &kib) == 1) {
                        libs[cur].kib += kib;
                }
        }
        fclose(f);
        for (size_t i = 0; i < n; i++)
                for (size_t j = i + 1; j < n; j++)
                        if (libs[j].kib > libs[i].kib) {
                                struct lib t = libs[i];
                                libs[i] = libs[j];
                                libs[j] = t;
                        }
        for (size_t i = 0; i < n; i++)
                if (libs[i].kib > 0)
                        printf("%6ld kB %s\n", libs[i].kib, libs[i].path);
}

int main(void)
{
        sqlite3 *db = NULL;
        struct MHD_Daemon *mhd;

        /* What the daemon does at start-up, minus its own logic. */
        if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
                return 1;
        CURLM *m = curl_multi_init();
        json_t *j = json_loads("{\"a\":[1,2,3]}", 0, NULL);
        struct fy_document *y = fy_document_build_from_string(NULL, "a: [1, 2]\n", FY_NT);
        if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
            sqlite3_exec(db, "PRAGMA journal_mode = WAL; CREATE TABLE t(a TEXT PRIMARY KEY);"
                             "INSERT INTO t VALUES('x'); SELECT * FROM t;", NULL, NULL, NULL) != SQLITE_OK)
                return 1;
        mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO, 0, NULL, NULL, NULL, NULL,
                               MHD_OPTION_END);
        status_line("VmRSS:");
        status_line("RssAnon:");
        status_line("RssFile:");
        per_file();
        if (mhd)
                MHD_stop_daemon(mhd);
        sqlite3_close(db);
        fy_document_destroy(y);
        json_decref(j);
        curl_multi_cleanup(m);
        curl_global_cleanup();
        return 0;
}
