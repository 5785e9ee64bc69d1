/* main.c: the `forgescale` command line: run, check, config-reference,
 * version. Owns argument parsing, exit codes (0 ok, 1 invalid configuration
 * or runtime failure, 2 usage error) and printing configuration errors.
 * The only place that may exit the process. */
#include "config/config.h"
#include "cli/status.h"
#include "daemon/daemon.h"
#include "provider/provider.h"
#include "util/log.h"

#include "fs_version.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_INVALID 1
#define EXIT_USAGE 2

static const char main_help[] =
        "Usage: forgescale COMMAND [OPTIONS]\n"
        "\n"
        "Autoscales Forgejo Actions runners.\n"
        "\n"
        "Commands:\n"
        "  run -c FILE          run the daemon until SIGINT or SIGTERM\n"
        "  check -c FILE        validate a configuration file (--print shows the\n"
        "                       effective configuration)\n"
        "  status [-c FILE | --url URL]\n"
        "                       show the pools of a running daemon as a table\n"
        "  config-reference     print the reference of every configuration key\n"
        "                       (Markdown)\n"
        "  version              print the version\n"
        "\n"
        "Run 'forgescale COMMAND --help' for the options of a command.\n"
        "\n"
        "Exit status: 0 success, 1 invalid configuration or runtime failure,\n"
        "2 usage error.\n";

static const char run_help[] =
        "Usage: forgescale run -c FILE [--log-level LEVEL] [--log-format FORMAT]\n"
        "\n"
        "Loads and validates FILE, loads the forge tokens, creates state_dir\n"
        "(mode 0700) and runs queue mode until SIGINT or SIGTERM. Workers keep\n"
        "running across a stop and are adopted at the next start. Logs go to\n"
        "stderr.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE     configuration file (required)\n"
        "      --log-level L     error, warn, info or debug (overrides log.level)\n"
        "      --log-format F    logfmt or json (overrides log.format)\n"
        "  -h, --help            show this help\n"
        "\n"
        "Exit status: 0 stopped by a signal, 1 invalid configuration or runtime\n"
        "failure, 2 usage error.\n";

static const char check_help[] =
        "Usage: forgescale check -c FILE [--print]\n"
        "\n"
        "Validates FILE and reports every problem as FILE:LINE:COL: message on\n"
        "stderr (warnings too, without failing). Also checks that each forge's\n"
        "token file or variable and each ca_file can be read (token values are\n"
        "never printed), that state_dir is safe, that the accounts of local\n"
        "providers exist, and that this build can run every provider type and\n"
        "pool mode.\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE     configuration file (required)\n"
        "  -p, --print           print the effective configuration (defaults\n"
        "                        filled in, durations normalised) instead of\n"
        "                        \"configuration OK\"\n"
        "  -h, --help            show this help\n"
        "\n"
        "Exit status: 0 valid, 1 invalid, 2 usage error.\n";

static const char reference_help[] =
        "Usage: forgescale config-reference\n"
        "\n"
        "Prints the reference of every configuration key (type, default,\n"
        "description) as Markdown, generated from the parser's key table.\n";

static const char version_help[] =
        "Usage: forgescale version\n"
        "\n"
        "Prints the version.\n";

static int usage_error(const char *cmd, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "forgescale: %s%s", cmd ? cmd : "", cmd ? ": " : "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nRun 'forgescale %s%s--help' for usage.\n", cmd ? cmd : "", cmd ? " " : "");
        return EXIT_USAGE;
}

/* Errors and warnings alike, in file order. */
static void print_diag(const struct config_diag *d)
{
        for (size_t i = 0; i < d->n; i++)
                fprintf(stderr, "%s\n", d->msgs[i].text);
}

/* Logs each message once at its severity; msg says what the errors mean. */
static void log_diag(const struct config_diag *d, const char *msg)
{
        for (size_t i = 0; i < d->n; i++) {
                if (d->msgs[i].warning)
                        log_warn("config", "configuration warning", KS("warning", d->msgs[i].text));
                else
                        log_error("config", msg, KS("error", d->msgs[i].text));
        }
}

struct opts {
        const char *config;
        const char *log_level;
        const char *log_format;
        bool print;
        bool help;
};

enum { OPT_LOG_LEVEL = 256, OPT_LOG_FORMAT };

/* Parses the options of one command. Returns 0 or EXIT_USAGE (reported). */
static int parse_opts(const char *cmd, int argc, char **argv, bool allow_config,
                      bool allow_print, bool allow_log, struct opts *o)
{
        static const struct option longopts[] = {
                { "config", required_argument, NULL, 'c' },
                { "print", no_argument, NULL, 'p' },
                { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
                { "log-format", required_argument, NULL, OPT_LOG_FORMAT },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        int c;

        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc, argv, ":c:ph", longopts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        if (!allow_config)
                                return usage_error(cmd, "unknown option %s", "-c");
                        o->config = optarg;
                        break;
                case 'p':
                        if (!allow_print)
                                return usage_error(cmd, "unknown option %s", "--print");
                        o->print = true;
                        break;
                case OPT_LOG_LEVEL:
                        if (!allow_log)
                                return usage_error(cmd, "unknown option %s", "--log-level");
                        o->log_level = optarg;
                        break;
                case OPT_LOG_FORMAT:
                        if (!allow_log)
                                return usage_error(cmd, "unknown option %s", "--log-format");
                        o->log_format = optarg;
                        break;
                case 'h':
                        o->help = true;
                        break;
                case ':':
                        return usage_error(cmd, "option %s needs a value", argv[optind - 1]);
                default:
                        return usage_error(cmd, "unknown option %s", argv[optind - 1]);
                }
        }
        if (optind < argc)
                return usage_error(cmd, "unexpected argument %s", argv[optind]);
        if (!o->help && allow_config && !o->config)
                return usage_error(cmd, "missing -c FILE");
        return 0;
}

/* What this build can run: a provider type with registered ops, and
 * queue mode (broker mode is not built yet). */
static int cmd_check(int argc, char **argv)
{
        struct opts o = { 0 };
        struct config_diag diag = { 0 };
        struct config *cfg = NULL;
        int r;

        r = parse_opts("check", argc, argv, true, true, false, &o);
        if (r)
                return r;
        if (o.help) {
                fputs(check_help, stdout);
                return 0;
        }
        r = config_load(o.config, &cfg, &diag);
        if (r >= 0) {
                /* Both, so that every problem is reported at once. */
                int rr = config_check_runnable(cfg, daemon_type_runnable, daemon_mode_runnable, NULL, &diag);
                r = config_check_files(cfg, &diag);
                if (r >= 0 && rr < 0)
                        r = rr;
        }
        if (r < 0) {
                print_diag(&diag);
                if (r == -ENOMEM)
                        fprintf(stderr, "forgescale: out of memory\n");
                config_diag_done(&diag);
                config_free(cfg);
                return EXIT_INVALID;
        }
        /* Warnings do not fail the check, but they are worth reading. */
        print_diag(&diag);
        if (o.print)
                r = config_print(cfg, stdout);
        else
                printf("%s: configuration OK\n", o.config);
        config_free(cfg);
        config_diag_done(&diag);
        if (r < 0 || fflush(stdout) != 0) {
                fprintf(stderr, "forgescale: cannot write the output\n");
                return EXIT_INVALID;
        }
        return 0;
}

static int cmd_run(int argc, char **argv)
{
        struct opts o = { 0 };
        struct config_diag diag = { 0 };
        struct config *cfg = NULL;
        enum log_level level = LOG_INFO;
        enum log_format format = LOG_FMT_LOGFMT;
        int r;

        r = parse_opts("run", argc, argv, true, false, true, &o);
        if (r)
                return r;
        if (o.help) {
                fputs(run_help, stdout);
                return 0;
        }
        if (o.log_level && log_level_parse(o.log_level, &level) < 0)
                return usage_error("run", "--log-level %s is invalid; use error, warn, info or debug",
                                   o.log_level);
        if (o.log_format && log_format_parse(o.log_format, &format) < 0)
                return usage_error("run", "--log-format %s is invalid; use logfmt or json",
                                   o.log_format);
        /* Until the configuration is read, flags (or defaults) decide. */
        log_init(level, format);

        r = config_load(o.config, &cfg, &diag);
        if (r >= 0)
                r = config_check_runnable(cfg, daemon_type_runnable, daemon_mode_runnable, NULL, &diag);
        if (r < 0) {
                log_diag(&diag, "invalid configuration");
                log_error("main", "not starting: the configuration has errors",
                          KS("config", o.config), KI("errors", config_diag_errors(&diag)));
                config_diag_done(&diag);
                return EXIT_INVALID;
        }
        log_init(o.log_level ? level : cfg->log.level, o.log_format ? format : cfg->log.format);
        log_diag(&diag, "invalid configuration");      /* warnings only */
        config_diag_done(&diag);
        r = config_check_files(cfg, &diag);
        if (r >= 0) {
                log_diag(&diag, "unusable file or variable");
                config_diag_done(&diag);
                r = config_load_tokens(cfg, &diag);
        }
        if (r < 0) {
                log_diag(&diag, "unusable file or variable");
                log_error("main", "not starting: a token, ca_file or state_dir cannot be used",
                          KS("config", o.config), KI("errors", config_diag_errors(&diag)));
                config_diag_done(&diag);
                config_free(cfg);
                return EXIT_INVALID;
        }
        /* config_check_files already showed the warnings load_tokens repeats. */
        config_diag_done(&diag);
        r = daemon_run(cfg, !o.log_level && !o.log_format);
        config_free(cfg);
        return r < 0 ? EXIT_INVALID : 0;
}

static int cmd_simple(const char *cmd, int argc, char **argv, const char *help,
                      void (*action)(void))
{
        struct opts o = { 0 };
        int r = parse_opts(cmd, argc, argv, false, false, false, &o);

        if (r)
                return r;
        if (o.help)
                fputs(help, stdout);
        else
                action();
        return fflush(stdout) == 0 ? 0 : EXIT_INVALID;
}

static void print_version(void)
{
        printf("forgescale %s\n", FORGESCALE_VERSION);
}

static void print_reference(void)
{
        config_print_reference(stdout);
}

int main(int argc, char **argv)
{
        const char *cmd;

        if (argc < 2)
                return usage_error(NULL, "missing command");
        cmd = argv[1];
        if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
                fputs(main_help, stdout);
                return 0;
        }
        if (strcmp(cmd, "--version") == 0) {
                print_version();
                return 0;
        }
        if (strcmp(cmd, "run") == 0)
                return cmd_run(argc - 1, argv + 1);
        if (strcmp(cmd, "check") == 0)
                return cmd_check(argc - 1, argv + 1);
        if (strcmp(cmd, "status") == 0)
                return status_main(argc - 1, argv + 1);
        if (strcmp(cmd, "config-reference") == 0)
                return cmd_simple(cmd, argc - 1, argv + 1, reference_help, print_reference);
        if (strcmp(cmd, "version") == 0)
                return cmd_simple(cmd, argc - 1, argv + 1, version_help, print_version);
        return usage_error(NULL, "unknown command \"%s\"", cmd);
}
