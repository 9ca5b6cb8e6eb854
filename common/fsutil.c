/* fsutil.c - mkdir -p and rm -r without a shell (see fsutil.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fsutil.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "log.h"
#include "xmalloc.h"

int fs_mkdir_p(const char *path)
{
    char *buf = xstrdup(path);
    int rc = 0;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
            rc = log_error_rc(ENC_EIO, "cannot create directory '%s': %s", buf, strerror(errno));
            break;
        }
        *p = c;
        if (!c)
            break;
    }
    free(buf);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: a leftover is harmless */
    return 0;
}

void fs_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
