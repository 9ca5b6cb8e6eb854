/* t_latent_file.c - the mmap'd latent store: layout, persistence across
 * reopen, geometry mismatch refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/latent_file.h"
#include "common/log.h"
#include "tests/tap.h"

int main(void)
{
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "/tmp/t_latent.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    log_set_level(LOG_LEVEL_ERROR);
    snprintf(path, sizeof path, "%s/j.lat", dir);
    int64_t st[3] = {0, 4, 8}, ln[3] = {6, 6, 3};
    struct latent_geometry g = {.n_windows = 3, .start = st, .len = ln, .latent_frames = 11,
                                .overlap = 2, .h = 2, .w = 3};
    struct latent_file *lf;
    is_int(latent_file_open(path, &g, 1, &lf), 0, "create");
    int64_t fs = latent_file_frame_values(lf);
    is_int(fs, 16 * 6, "frame values");
    ok(latent_file_slot(lf, 0, 1) - latent_file_slot(lf, 0, 0) == 6 * fs, "slots are packed");
    ok(latent_file_slot(lf, 1, 0) - latent_file_slot(lf, 0, 0) == 15 * fs, "parity 1 follows");
    for (int64_t i = 0; i < 3 * fs; i++)
        latent_file_slot(lf, 1, 2)[i] = (uint16_t)i;
    latent_file_head(lf, 2)[5] = 1.5f;
    latent_file_note_write(lf, 1);
    is_int(latent_file_sync(lf, 1), 0, "sync");
    latent_file_close(&lf);
    is_int(latent_file_open(path, &g, 0, &lf), 0, "reopen");
    ok(latent_file_slot(lf, 1, 2)[3 * fs - 1] == (uint16_t)(3 * fs - 1), "slot bytes persist");
    ok(latent_file_head(lf, 2)[5] == 1.5f, "head persists");
    latent_file_close(&lf);
    g.h = 3;
    is_int(latent_file_open(path, &g, 0, &lf), ENC_EINVAL, "a store of another geometry is refused");
    unlink(path);
    rmdir(dir);
    return done_testing();
}
