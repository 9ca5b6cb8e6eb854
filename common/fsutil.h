/*
 * fsutil.h - small filesystem helpers shared by the tools: create a
 * directory with its parents, remove a directory tree.
 */
#ifndef ENCORE_FSUTIL_H
#define ENCORE_FSUTIL_H

/* fs_mkdir_p() creates path and its missing parents (0755). 0 or ENC_EIO,
 * logged with the directory that could not be made. */
int fs_mkdir_p(const char *path);

/* fs_remove_tree() deletes path and everything under it without following
 * symbolic links; a missing path is not an error. Best effort: what cannot be
 * removed is left. */
void fs_remove_tree(const char *path);

#endif
