/*
 * bench_farm.c - `encore bench farm`: a real coordinator and W sim workers
 * as threads over inproc://, one job of K windows x S steps, each task
 * taking N ms. Reports makespan against the ideal max(S, ceil(K*S/W))*N,
 * tasks/s, coordinator CPU per task, bytes per task with and without window
 * affinity, and the coordinator's resident memory (docs/json.md).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/embed.h"
#include "common/log.h"
#include "common/parse.h"
#include "coordinator/coordinator.h"

static const char usage[] =
    "usage: encore bench farm [--workers W] [--windows K] [--steps S] [--sim-ms N] [--size WxH]\n"
    "                         [--no-fsync] [--json]\n";

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * sysconf(_SC_PAGESIZE);
}

int bench_farm(int argc, char **argv)
{
    int W = 4, K = 20, S = 3, N = 0, json = 0, durable = 1, side = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int x;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--no-fsync") == 0) {
            durable = 0;
        } else if (v && parse_int(v, 0, 10000000, &x) == 0 &&
                   (!strcmp(a, "--workers") || !strcmp(a, "--windows") || !strcmp(a, "--steps") ||
                    !strcmp(a, "--sim-ms") || !strcmp(a, "--size"))) {
            if (!strcmp(a, "--workers")) W = x;
            else if (!strcmp(a, "--windows")) K = x;
            else if (!strcmp(a, "--steps")) S = x;
            else if (!strcmp(a, "--sim-ms")) N = x;
            else side = x;
            i++;
        } else {
            return cli_usage_error(usage, "bad option '%s'", a);
        }
    }
    if (W < 1 || K < 1 || S < 1 || side < 8 || side % 8)
        return cli_usage_error(usage, "workers, windows, steps must be >= 1, size a multiple of 8");
    log_set_level(LOG_LEVEL_WARN);
    char dir[] = "/tmp/encore-bench.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://encore-bench-%d", (int)getpid());
    /* K windows of F=21, O=5 (stride 16): L = 16(K-1)+21 latent frames. */
    struct render_opts r;
    render_opts_default(&r);
    snprintf(r.p.model, sizeof r.p.model, "sim");
    r.p.steps = S;
    r.p.width = r.p.height = side;
    int64_t L = 16 * (int64_t)(K - 1) + 21;
    r.p.n_samples = ((L - 1) * 4 + 1) * 640;
    long rss0 = rss_bytes();
    struct embed *e;
    if (embed_start(&e, dir, ep, W, N, durable))
        return 1;
    usleep(200000); /* let the workers say hello */
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_SUBMIT);
    req.u.submit.params = r.p;
    double t0 = mono(), cpu0 = embed_coordinator_cpu(e);
    int rc = client_call(embed_ctx(e), ep, "bench farm", &req, &rep, 60000);
    struct wire_job_info ji;
    memset(&ji, 0, sizeof ji);
    if (!rc) {
        uint64_t id = rep.u.submit_reply.job_id;
        wire_msg_release(&rep);
        for (;;) {
            usleep(N > 0 ? 20000 : 5000);
            wire_msg_init(&req, WIRE_STATUS);
            req.u.status.job_id = id;
            if ((rc = client_call(embed_ctx(e), ep, "bench farm", &req, &rep, 60000)))
                break;
            ji = rep.u.status_reply.jobs[0];
            ji.window_steps = NULL;
            wire_msg_release(&rep);
            if (strcmp(ji.state, "running") != 0 && strcmp(ji.state, "queued") != 0)
                break;
        }
    }
    double t1 = mono(), cpu1 = embed_coordinator_cpu(e);
    long rss1 = rss_bytes();
    embed_stop(&e);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench farm: cannot remove '%s'\n", dir);
    if (rc || strcmp(ji.state, "done") != 0) {
        fprintf(stderr, "encore bench farm: the job did not finish (%s)\n", ji.state);
        return 1;
    }
    /* The job's finish time, not our polling, bounds the makespan. */
    double makespan = ji.finished_at > 0 && ji.created_at > 0 ? ji.finished_at - ji.created_at
                                                               : t1 - t0;
    double tasks = (double)K * S;
    double ideal = fmax((double)S, ceil(tasks / W)) * N / 1000.0;
    double eff = ideal > 0 ? ideal / makespan : 0;
    double tps = tasks / makespan;
    double cpu = (cpu1 - cpu0) / tasks;
    double bpt = (double)ji.bytes_sent / tasks, bptn = (double)ji.bytes_full / tasks;
    long rss = rss1 > rss0 ? rss1 : rss0;
    if (json) {
        printf("{\"workers\":%d,\"windows\":%d,\"steps\":%d,\"sim_ms\":%d,\"tasks\":%.0f,"
               "\"makespan_s\":%.4f,\"ideal_s\":%.4f,\"efficiency\":%.4f,\"tasks_per_s\":%.1f,"
               "\"coordinator_cpu_per_task_s\":%.3e,\"bytes_per_task\":%.1f,"
               "\"bytes_per_task_no_affinity\":%.1f,\"coordinator_rss_bytes\":%ld,"
               "\"durable\":%s}\n",
               W, K, S, N, tasks, makespan, ideal, eff, tps, cpu, bpt, bptn, rss,
               durable ? "true" : "false");
    } else {
        printf("farm: %d workers, %d windows x %d steps = %.0f tasks, %d ms each%s\n", W, K, S,
               tasks, N, durable ? " (durable commits)" : "");
        printf("  makespan          %.3f s (ideal %.3f s, efficiency %.3f)\n", makespan, ideal,
               eff);
        printf("  throughput        %.1f tasks/s\n", tps);
        printf("  coordinator CPU   %.1f us/task\n", cpu * 1e6);
        printf("  bytes/task        %.0f with affinity, %.0f without\n", bpt, bptn);
        printf("  process RSS       %.1f MiB (coordinator and workers)\n", rss / 1048576.0);
    }
    return 0;
}
