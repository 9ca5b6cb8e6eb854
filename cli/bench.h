/*
 * bench.h - `encore bench engine|farm|render|encoders`: performance figures.
 *
 * Each prints human-readable lines, or with --json exactly one JSON object
 * (documented in docs/json.md). argv[0] is the bench name.
 */
#ifndef ENCORE_BENCH_H
#define ENCORE_BENCH_H

int bench_engine(int argc, char **argv);
int bench_farm(int argc, char **argv);
int bench_render(int argc, char **argv);
int bench_encoders(int argc, char **argv);

#endif
