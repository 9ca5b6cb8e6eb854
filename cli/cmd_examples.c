/*
 * cmd_examples.c - `encore examples DIR`: write the demo inputs (a few
 * seconds of formant-synthesised speech and a drawn portrait) into DIR, as
 * committed in examples/.
 */
#include <stdio.h>

#include "commands.h"
#include "common/err.h"
#include "common/media.h"

static const char usage[] = "usage: encore examples DIR\n"
                            "  writes speech.wav (5 s, 16 kHz) and portrait.png (512x512) into "
                            "DIR\n";

int cmd_examples(const struct global_opts *g, int argc, char **argv)
{
    (void)g;
    if (argc > 1 && cli_is_help(argv[1])) {
        fputs(usage, stdout);
        return EXIT_STATUS_OK;
    }
    if (argc != 2)
        return cli_usage_error(usage, "examples: one directory expected");
    int rc = media_make_examples(argv[1]);
    if (rc < 0) {
        fprintf(stderr, "encore examples: cannot write into '%s': %s\n", argv[1],
                enc_err_str(rc));
        return EXIT_STATUS_FAILURE;
    }
    printf("wrote %s/speech.wav and %s/portrait.png\n", argv[1], argv[1]);
    return EXIT_STATUS_OK;
}
