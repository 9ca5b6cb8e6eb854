/*
 * status_json.h - the JSON documents of `encore status --json` and
 * `encore workers --json` (docs/json.md), written to a text buffer so the
 * CLI and the coordinator's HTTP endpoint (/status, /workers) print the
 * very same bytes. None of them adds a trailing newline.
 */
#ifndef ENCORE_STATUS_JSON_H
#define ENCORE_STATUS_JSON_H

#include <stdint.h>

#include "common/textbuf.h"
#include "common/wire.h"

/* status_json_job() appends one job object. */
void status_json_job(struct textbuf *b, const struct wire_job_info *j);

/* status_json_jobs() appends {"jobs":[n job objects],"stale_results":N,
 * "bad_messages":N}. */
void status_json_jobs(struct textbuf *b, const struct wire_job_info *jobs, int n,
                      int64_t stale_results, int64_t bad_messages);

/* status_json_workers() appends {"workers":[n worker objects]}. */
void status_json_workers(struct textbuf *b, const struct wire_worker_info *ws, int n);

#endif
