/*
 * bench_farm.c - `encore bench farm`: a real coordinator and W sim workers,
 * one job of K windows x S steps, each task taking N ms. Reports makespan
 * against the ideal max(S, ceil(K*S/W))*N, tasks/s, coordinator CPU per
 * task, bytes per task with and without window affinity, and the
 * coordinator's resident memory (docs/json.md).
 *
 * By default the coordinator runs in a child process (forked before any
 * ZeroMQ context exists) listening on ipc://, and the workers are threads of
 * this process: the coordinator's RSS (peak, VmHWM) and CPU are then its
 * own, not the workers'. --threads runs everything as threads over
 * inproc:// (encore render's embedded farm); RSS is then the whole process.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/embed.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/parse.h"
#include "coordinator/coordinator.h"
#include "worker/agent.h"

static const char usage[] =
    "usage: encore bench farm [--workers W] [--windows K] [--steps S] [--sim-ms N] [--size WxH]\n"
    "                         [--no-fsync] [--threads] [--json]\n";

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* status_kb(): a "Name:  N kB" line of /proc/PID/status (pid 0: self). */
static long status_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    long v = 0;
    size_t n = strlen(name);
    if (pid)
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    else
        snprintf(path, sizeof path, "/proc/self/status");
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v * 1024;
}

/* proc_cpu(): user + system seconds of process pid, all its threads. */
static double proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A farm of W sim workers: in-process threads with the coordinator in a
 * child process (default), or everything as threads (embed). */
struct farm {
    struct embed *e;      /* --threads */
    pid_t child;          /* coordinator process */
    void *ctx;
    int n;
    struct agent **a;
    pthread_t *t;
};

static struct coordinator *child_coord;

static void child_stop(int sig)
{
    (void)sig;
    if (child_coord)
        coordinator_stop(child_coord);
}

static void *agent_main(void *arg)
{
    agent_run(arg);
    return NULL;
}

static int farm_start(struct farm *f, const char *dir, const char *ep, int W, int N,
                      int durable, int threads)
{
    memset(f, 0, sizeof *f);
    if (threads) {
        if (embed_start(&f->e, dir, ep, W, N, durable))
            return 1;
        f->ctx = embed_ctx(f->e);
        return 0;
    }
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    f->child = fork();
    if (f->child < 0)
        return 1;
    if (f->child == 0) {
        struct coordinator_opts co;
        char ok = 0;
        close(ready[0]);
        prctl(PR_SET_NAME, "encore-coord", 0, 0, 0);
        coordinator_opts_default(&co);
        co.listen = ep;
        co.state_dir = dir;
        co.durable = durable;
        signal(SIGTERM, child_stop);
        if (coordinator_new(&co, &child_coord) == 0)
            ok = 1;
        if (write(ready[1], &ok, 1) != 1 || !ok)
            _exit(1);
        close(ready[1]);
        int rc = coordinator_run(child_coord);
        coordinator_destroy(&child_coord);
        _exit(rc ? 1 : 0);
    }
    close(ready[1]);
    char ok = 0;
    ssize_t r;
    while ((r = read(ready[0], &ok, 1)) < 0 && errno == EINTR)
        ;
    close(ready[0]);
    if (r != 1 || !ok) {
        waitpid(f->child, NULL, 0);
        f->child = 0;
        return 1;
    }
    f->ctx = zmq_ctx_new();
    f->n = W;
    f->a = calloc((size_t)W, sizeof *f->a);
    f->t = calloc((size_t)W, sizeof *f->t);
    for (int i = 0; i < W; i++) {
        struct agent_opts ao;
        char name[32];
        agent_opts_default(&ao);
        snprintf(name, sizeof name, "bench-%d", i);
        ao.name = name;
        ao.coordinator = ep;
        ao.backend = "sim";
        ao.model = "sim";
        ao.sim_ms = N;
        ao.zmq_ctx = f->ctx;
        if (agent_new(&ao, &f->a[i]) == 0)
            pthread_create(&f->t[i], NULL, agent_main, f->a[i]);
    }
    return 0;
}

/* farm_cpu(): the coordinator's CPU seconds so far. */
static double farm_cpu(struct farm *f)
{
    return f->e ? embed_coordinator_cpu(f->e) : proc_cpu(f->child);
}

/* farm_agent_stats(): the workers' runner figures, summed. */
static void farm_agent_stats(struct farm *f, struct agent_stats *sum)
{
    if (f->e)
        embed_agent_stats(f->e, sum);
    else
        agent_sum_stats(f->a, f->n, sum);
}

static void farm_stop(struct farm *f)
{
    if (f->e) {
        embed_stop(&f->e);
        return;
    }
    for (int i = 0; i < f->n; i++)
        if (f->a[i])
            agent_stop(f->a[i]);
    for (int i = 0; i < f->n; i++)
        if (f->a[i]) {
            pthread_join(f->t[i], NULL);
            agent_destroy(&f->a[i]);
        }
    if (f->child > 0) {
        kill(f->child, SIGTERM);
        waitpid(f->child, NULL, 0);
    }
    if (f->ctx)
        zmq_ctx_term(f->ctx);
    free(f->a);
    free(f->t);
}

int bench_farm(int argc, char **argv)
{
    int W = 4, K = 20, S = 3, N = 0, json = 0, durable = 1, side = 64, threads = 0;
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
        } else if (strcmp(a, "--threads") == 0) {
            threads = 1;
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
    char ep[96];
    if (threads)
        snprintf(ep, sizeof ep, "inproc://encore-bench-%d", (int)getpid());
    else
        snprintf(ep, sizeof ep, "ipc://%s/farm.sock", dir);
    /* K windows of F=21, O=5 (stride 16): L = 16(K-1)+21 latent frames. */
    struct render_opts r;
    render_opts_default(&r);
    snprintf(r.p.model, sizeof r.p.model, "sim");
    r.p.steps = S;
    r.p.width = r.p.height = side;
    int64_t L = 16 * (int64_t)(K - 1) + 21;
    r.p.n_samples = ((L - 1) * 4 + 1) * 640;
    struct farm fm;
    if (farm_start(&fm, dir, ep, W, N, durable, threads)) {
        fprintf(stderr, "encore bench farm: cannot start the farm\n");
        return 1;
    }
    usleep(200000); /* let the workers say hello */
    struct wire_msg req, rep;
    wire_msg_init(&req, WIRE_SUBMIT);
    req.u.submit.params = r.p;
    double t0 = mono(), cpu0 = farm_cpu(&fm);
    int rc = client_call(fm.ctx, ep, "bench farm", &req, &rep, 60000);
    struct wire_job_info ji;
    memset(&ji, 0, sizeof ji);
    if (!rc) {
        uint64_t id = rep.u.submit_reply.job_id;
        wire_msg_release(&rep);
        for (;;) {
            usleep(N > 0 ? 20000 : 5000);
            wire_msg_init(&req, WIRE_STATUS);
            req.u.status.job_id = id;
            if ((rc = client_call(fm.ctx, ep, "bench farm", &req, &rep, 60000)))
                break;
            ji = rep.u.status_reply.jobs[0];
            ji.window_steps = NULL;
            wire_msg_release(&rep);
            if (strcmp(ji.state, "running") != 0 && strcmp(ji.state, "queued") != 0)
                break;
        }
    }
    double t1 = mono(), cpu1 = farm_cpu(&fm);
    /* Peak resident memory: of the coordinator process, or (--threads) of
     * this whole process. */
    long rss = threads ? status_kb(0, "VmHWM") : status_kb(fm.child, "VmHWM");
    struct agent_stats ws;
    farm_agent_stats(&fm, &ws);
    farm_stop(&fm);
    fs_remove_tree(dir);
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
    /* Where the workers' time went: per task, running it (N ms plus the
     * worker's own overhead) and waiting with nothing queued. */
    double busy_ms = ws.tasks ? ws.busy_s * 1e3 / (double)ws.tasks : 0;
    double starved_ms = ws.tasks ? ws.starved_s * 1e3 / (double)ws.tasks : 0;
    if (json) {
        printf("{\"workers\":%d,\"windows\":%d,\"steps\":%d,\"sim_ms\":%d,\"tasks\":%.0f,"
               "\"makespan_s\":%.4f,\"ideal_s\":%.4f,\"efficiency\":%.4f,\"tasks_per_s\":%.1f,"
               "\"coordinator_cpu_per_task_s\":%.3e,\"bytes_per_task\":%.1f,"
               "\"bytes_per_task_no_affinity\":%.1f,\"coordinator_rss_bytes\":%ld,%s"
               "\"worker_busy_ms_per_task\":%.3f,\"worker_starved_ms_per_task\":%.3f,"
               "\"durable\":%s,\"workers_as\":\"%s\"}\n",
               W, K, S, N, tasks, makespan, ideal, eff, tps, cpu, bpt, bptn,
               rss, threads ? "\"coordinator_rss_is_process\":true," : "", busy_ms, starved_ms,
               durable ? "true" : "false", threads ? "threads" : "threads of another process");
    } else {
        printf("farm: %d workers, %d windows x %d steps = %.0f tasks, %d ms each%s\n", W, K, S,
               tasks, N, durable ? " (durable commits)" : "");
        printf("  makespan          %.3f s (ideal %.3f s, efficiency %.3f)\n", makespan, ideal,
               eff);
        printf("  throughput        %.1f tasks/s\n", tps);
        printf("  coordinator CPU   %.1f us/task\n", cpu * 1e6);
        printf("  bytes/task        %.0f with affinity, %.0f without\n", bpt, bptn);
        printf("  per worker task   %.3f ms running, %.3f ms starved (nothing queued)\n",
               busy_ms, starved_ms);
        printf("  %s %.1f MiB peak\n",
               threads ? "process RSS      " : "coordinator RSS  ", rss / 1048576.0);
    }
    return 0;
}
