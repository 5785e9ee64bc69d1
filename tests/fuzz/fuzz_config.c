/* fuzz_config.c: libFuzzer target for the configuration loader: any bytes
 * through config_parse(); an accepted configuration is printed, and what is
 * printed must parse again and print the same (check --print promises YAML
 * that config_load() accepts). Never touches a file: config_parse() reads
 * only memory and the printout goes to a memory stream. */
#include "config/config.h"
#include "fuzz_check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz.yaml"
#define DIR "/fuzz-config-dir"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The configuration printed as YAML, malloc'd; aborts when printing fails. */
static char *print(const struct config *cfg, size_t *ret_len)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        int r;

        FUZZ_CHECK(f, "open_memstream failed");
        r = config_print(cfg, f);
        FUZZ_CHECK(fclose(f) == 0, "closing the memory stream failed");
        FUZZ_CHECK(r == 0, "config_print() returned %d for an accepted configuration", r);
        *ret_len = len;
        return buf;
}

/* Every rejection comes with at least one message, each naming the file
 * and free of control bytes (the messages reach a terminal or a log). */
static void check_diag(const struct config_diag *d, int r)
{
        FUZZ_CHECK(d->n > 0, "config_parse() returned %d without a message", r);
        for (size_t i = 0; i < d->n; i++) {
                const char *m = d->msgs[i].text;
                FUZZ_CHECK(m && strncmp(m, NAME, strlen(NAME)) == 0,
                           "message %zu does not start with the file name: %s", i, m ? m : "(null)");
                for (const char *p = m; *p; p++)
                        FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
                                   "message %zu has control byte 0x%02x: %s", i, (unsigned char)*p, m);
                fuzz_sink(m, strlen(m));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct config *cfg = NULL, *again = NULL;
        struct config_diag diag = { 0 };
        char *out = NULL, *out2 = NULL;
        size_t out_len = 0, out2_len = 0;
        int r;

        r = config_parse(NAME, (const char *)data, size, DIR, &cfg, &diag);
        if (r < 0) {
                FUZZ_CHECK(r == -EINVAL || r == -EFBIG || r == -ENOMEM,
                           "config_parse() returned %d", r);
                FUZZ_CHECK(!cfg, "config_parse() failed but set *ret_cfg");
                check_diag(&diag, r);
                config_diag_done(&diag);
                return 0;
        }
        FUZZ_CHECK(r == 0 && cfg, "config_parse() returned %d and config %p", r, (void *)cfg);
        config_diag_done(&diag);

        out = print(cfg, &out_len);
        r = config_parse(NAME, out, out_len, DIR, &again, &diag);
        if (r < 0) {
                fprintf(stderr, "printed configuration:\n%s\n", out);
                for (size_t i = 0; i < diag.n; i++)
                        fprintf(stderr, "  %s\n", diag.msgs[i].text);
                FUZZ_CHECK(0, "the printed configuration does not parse again (%d)", r);
        }
        out2 = print(again, &out2_len);
        if (out_len != out2_len || memcmp(out, out2, out_len) != 0) {
                fprintf(stderr, "first print:\n%s\nsecond print:\n%s\n", out, out2);
                FUZZ_CHECK(0, "printing the reparsed configuration gives other YAML");
        }
        fuzz_sink(out, out_len);

        free(out);
        free(out2);
        config_free(again);
        config_free(cfg);
        config_diag_done(&diag);
        return 0;
}
