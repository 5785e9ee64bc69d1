/* status.c: see status.h. */
#include "cli/status.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "util/httpc.h"
#include "util/strutil.h"

static const char status_help[] =
        "Usage: forgescale status [-c FILE | --url URL] [--json]\n"
        "\n"
        "Shows the pools of a running daemon as a table: waiting jobs, and\n"
        "instances starting, idle (waiting for their job) and busy.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE   find the daemon from the listen address in FILE\n"
        "  -u, --url URL       the daemon's HTTP address (default\n"
        "                      http://127.0.0.1:9464)\n"
        "  -j, --json          print the daemon's JSON answer as is\n"
        "  -h, --help          show this help\n"
        "\n"
        "Exit status: 0 ok, 1 daemon unreachable or bad answer, 2 usage error.\n";

static int get_int(json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);

        return json_is_integer(v) ? (int)json_integer_value(v) : 0;
}

static int print_table(json_t *pools)
{
        size_t i;
        json_t *p;

        printf("%-16s %-6s %-24s %-24s %7s %8s %5s %5s %5s\n", "POOL", "MODE", "SCOPE", "LABELS",
               "WAITING", "STARTING", "IDLE", "BUSY", "MAX");
        json_array_foreach(pools, i, p) {
                char labels[256] = "";
                size_t k, o = 0;
                json_t *l;
                json_array_foreach(json_object_get(p, "labels"), k, l) {
                        int w = snprintf(labels + o, sizeof(labels) - o, "%s%s", k ? "," : "",
                                         json_is_string(l) ? json_string_value(l) : "?");
                        if (w < 0 || (size_t)w >= sizeof(labels) - o)
                                break;
                        o += (size_t)w;
                }
                /* The answer is the server's: print none of its bytes a
                 * terminal would act on. */
                char name[128], mode[16], scope[256], labs[sizeof(labels)];
                strutil_printable(json_string_value(json_object_get(p, "name")), name, sizeof(name));
                strutil_printable(json_string_value(json_object_get(p, "mode")), mode, sizeof(mode));
                strutil_printable(json_string_value(json_object_get(p, "scope")), scope, sizeof(scope));
                strutil_printable(labels, labs, sizeof(labs));
                printf("%-16s %-6s %-24s %-24s %7d %8d %5d %5d %5d%s\n", name,
                       mode, scope, labs, get_int(p, "waiting"),
                       get_int(p, "starting"), get_int(p, "idle"), get_int(p, "busy"),
                       get_int(p, "max_runners"),
                       json_is_false(json_object_get(p, "enabled")) ? "  (not started)" : "");
        }
        return 0;
}

int status_main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "url", required_argument, NULL, 'u' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        const char *cfgpath = NULL, *url = NULL;
        char urlbuf[512];
        bool json_out = false;
        int c, rc = 1;

        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc, argv, ":c:u:jh", longopts, NULL)) != -1) {
                switch (c) {
                case 'c': cfgpath = optarg; break;
                case 'u': url = optarg; break;
                case 'j': json_out = true; break;
                case 'h': fputs(status_help, stdout); return 0;
                case ':':
                        fprintf(stderr, "forgescale: status: option %s needs a value\n", argv[optind - 1]);
                        return 2;
                default:
                        fprintf(stderr, "forgescale: status: unknown option %s\n"
                                "Run 'forgescale status --help' for usage.\n", argv[optind - 1]);
                        return 2;
                }
        }
        if (optind < argc || (cfgpath && url)) {
                fprintf(stderr, "forgescale: status: give either -c FILE or --url URL\n");
                return 2;
        }
        if (cfgpath) {
                struct config *cfg = NULL;
                struct config_diag diag = { 0 };
                if (config_load(cfgpath, &cfg, &diag) < 0) {
                        for (size_t i = 0; i < diag.n; i++)
                                fprintf(stderr, "%s\n", diag.msgs[i].text);
                        config_diag_done(&diag);
                        return 1;
                }
                if (cfg->listen_port == 0) {
                        fprintf(stderr, "forgescale: status: %s listens on port 0 (any free port); use --url\n",
                                cfgpath);
                        config_free(cfg);
                        return 1;
                }
                const char *h = cfg->listen_host && *cfg->listen_host ? cfg->listen_host : "127.0.0.1";
                if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
                        h = "127.0.0.1";
                snprintf(urlbuf, sizeof(urlbuf), strchr(h, ':') ? "http://[%s]:%d" : "http://%s:%d", h,
                         cfg->listen_port);
                config_free(cfg);
                url = urlbuf;
        }
        if (!url)
                url = "http://127.0.0.1:9464";

        char full[600];
        size_t ul = strlen(url);
        snprintf(full, sizeof(full), "%.*s/v1/pools", (int)(ul && url[ul - 1] == '/' ? ul - 1 : ul), url);
        httpc_global_init();
        struct httpc *h = httpc_new();
        struct httpc_resp resp;
        struct httpc_req req = { .url = full, .timeout_ms = 5000, .max_response = 4u << 20 };
        if (!h) {
                fprintf(stderr, "forgescale: status: out of memory\n");
                return 1;
        }
        int r = httpc_do(h, &req, &resp);
        if (r < 0) {
                fprintf(stderr, "forgescale: status: cannot reach the daemon at %s: %s\n", url,
                        resp.errbuf[0] ? resp.errbuf : strerror(-r));
                goto out;
        }
        if (resp.status != 200) {
                fprintf(stderr, "forgescale: status: %s answered HTTP %ld\n", full, resp.status);
                goto out;
        }
        json_error_t jerr;
        json_t *pools = json_loadb(resp.body, resp.len, 0, &jerr);
        if (!json_is_array(pools)) {
                fprintf(stderr, "forgescale: status: %s did not answer a JSON array\n", full);
                json_decref(pools);
                goto out;
        }
        if (json_out) {
                fwrite(resp.body, 1, resp.len, stdout);
                if (resp.len && resp.body[resp.len - 1] != '\n')
                        putchar('\n');
        } else {
                print_table(pools);
        }
        json_decref(pools);
        rc = fflush(stdout) == 0 ? 0 : 1;
out:
        httpc_resp_done(&resp);
        httpc_free(h);
        return rc;
}
