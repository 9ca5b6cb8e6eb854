/*
 * status_json.c - job and worker JSON (see status_json.h). Field order and
 * number formats are part of the stable output (docs/json.md): integers
 * in full, times with three decimals; fields are only ever appended.
 */
#include "common/status_json.h"

void status_json_job(struct textbuf *b, const struct wire_job_info *j)
{
    textbuf_printf(b, "{\"id\":%llu,\"state\":", (unsigned long long)j->id);
    textbuf_json_str(b, j->state);
    textbuf_printf(b, ",\"priority\":%d,\"model\":", j->priority);
    textbuf_json_str(b, j->model);
    textbuf_printf(b,
                   ",\"windows\":%lld,\"steps\":%d,\"latent_frames\":%lld,\"windows_done\":%lld,"
                   "\"tasks_done\":%lld,\"tasks_total\":%lld,\"stale_results\":%lld,"
                   "\"requeued\":%lld,\"bytes_sent\":%lld,\"bytes_full\":%lld,"
                   "\"created_at\":%.3f,\"started_at\":%.3f,\"finished_at\":%.3f,\"error\":",
                   (long long)j->n_windows, j->steps, (long long)j->latent_frames,
                   (long long)j->windows_done, (long long)j->tasks_done, (long long)j->tasks_total,
                   (long long)j->stale_results, (long long)j->requeued, (long long)j->bytes_sent,
                   (long long)j->bytes_full, j->created_at, j->started_at, j->finished_at);
    textbuf_json_str(b, j->error);
    textbuf_printf(b, ",\"segments\":%lld,\"segments_done\":%lld,\"prepared\":%s}",
                   (long long)j->segments, (long long)j->segments_done,
                   j->prepared ? "true" : "false");
}

void status_json_jobs(struct textbuf *b, const struct wire_job_info *jobs, int n,
                      int64_t stale_results, int64_t bad_messages)
{
    textbuf_printf(b, "{\"jobs\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            textbuf_append(b, ",", 1);
        status_json_job(b, &jobs[i]);
    }
    textbuf_printf(b, "],\"stale_results\":%lld,\"bad_messages\":%lld}", (long long)stale_results,
                   (long long)bad_messages);
}

void status_json_workers(struct textbuf *b, const struct wire_worker_info *ws, int n)
{
    textbuf_printf(b, "{\"workers\":[");
    for (int i = 0; i < n; i++) {
        const struct wire_worker_info *w = &ws[i];
        textbuf_printf(b, "%s{\"id\":%llu,\"name\":", i ? "," : "", (unsigned long long)w->id);
        textbuf_json_str(b, w->name);
        textbuf_printf(b, ",\"backend\":");
        textbuf_json_str(b, w->backend);
        textbuf_printf(b, ",\"device\":");
        textbuf_json_str(b, w->device);
        textbuf_printf(b, ",\"state\":");
        textbuf_json_str(b, w->state);
        textbuf_printf(b, ",\"models\":[");
        for (int k = 0; k < w->n_models; k++) {
            if (k)
                textbuf_append(b, ",", 1);
            textbuf_json_str(b, w->models[k]);
        }
        textbuf_printf(b,
                       "],\"running\":%d,\"tasks_done\":%lld,\"last_seen\":%.3f,"
                       "\"connected_at\":%.3f}",
                       w->running, (long long)w->tasks_done, w->last_seen, w->connected_at);
    }
    textbuf_printf(b, "]}");
}
