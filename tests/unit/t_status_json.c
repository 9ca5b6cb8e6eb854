/*
 * t_status_json.c - the shared status/workers JSON (common/status_json.h)
 * and its text buffer: escapes, growth past the first allocation, and the
 * documents parse back (common/json.h) with the fields docs/json.md lists.
 */
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/status_json.h"
#include "common/textbuf.h"
#include "tests/tap.h"

int main(void)
{
    struct textbuf b = {0};
    textbuf_json_str(&b, "a\"b\\c\n\x01");
    is_str(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\"", "json_str escapes quote, backslash, controls");
    textbuf_free(&b);
    for (int i = 0; i < 1000; i++)
        textbuf_printf(&b, "%04d", i);
    ok(b.n == 4000 && strlen(b.p) == 4000 && memcmp(b.p + 3996, "0999", 4) == 0,
       "printf grows the buffer (%zu bytes)", b.n);
    size_t n;
    char *t = textbuf_take(&b, &n);
    ok(n == 4000 && b.p == NULL && b.n == 0, "take empties the buffer");
    free(t);
    t = textbuf_take(&b, &n);
    ok(t && t[0] == '\0' && n == 0, "take of an empty buffer is \"\"");
    free(t);

    struct wire_job_info jobs[2];
    memset(jobs, 0, sizeof jobs);
    jobs[0].id = 7;
    memcpy(jobs[0].state, "running", 8);
    memcpy(jobs[0].model, "tiny", 5);
    jobs[0].tasks_done = 3;
    jobs[0].tasks_total = 52;
    jobs[0].created_at = 1.5;
    memcpy(jobs[0].error, "bad \"x\"", 8);
    jobs[1].id = 8;
    jobs[1].prepared = 1;
    status_json_jobs(&b, jobs, 2, 4, 5);
    struct json *j = NULL;
    ok(json_parse(b.p, b.n, &j, NULL) == 0, "status document parses");
    const struct json *j0 = json_at(json_get(j, "jobs"), 0);
    int64_t v = 0;
    is_int(json_len(json_get(j, "jobs")), 2, "two jobs");
    ok(json_int(json_get(j0, "tasks_total"), &v) == 0 && v == 52, "tasks_total");
    is_str(json_str(json_get(j0, "error")), "bad \"x\"", "error round-trips");
    ok(json_int(json_get(j, "bad_messages"), &v) == 0 && v == 5, "bad_messages");
    int pr = 0;
    ok(json_bool(json_get(json_at(json_get(j, "jobs"), 1), "prepared"), &pr) == 0 && pr == 1,
       "prepared is a bool");
    ok(strstr(b.p, "\"created_at\":1.500,") != NULL, "times have three decimals");
    json_free(&j);
    textbuf_free(&b);

    struct wire_worker_info w;
    memset(&w, 0, sizeof w);
    w.id = 1;
    memcpy(w.name, "a", 2);
    w.n_models = 2;
    memcpy(w.models[0], "tiny", 5);
    memcpy(w.models[1], "wan", 4);
    status_json_workers(&b, &w, 1);
    ok(json_parse(b.p, b.n, &j, NULL) == 0, "workers document parses");
    const struct json *w0 = json_at(json_get(j, "workers"), 0);
    is_str(json_str(json_get(w0, "name")), "a", "worker name");
    is_int(json_len(json_get(w0, "models")), 2, "two models");
    json_free(&j);
    textbuf_free(&b);
    status_json_workers(&b, NULL, 0);
    is_str(b.p, "{\"workers\":[]}", "no workers");
    textbuf_free(&b);
    return done_testing();
}
