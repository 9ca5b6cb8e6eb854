/*
 * worker_main.c - encore-worker: parse options, run the agent until
 * SIGTERM/SIGINT (finish the running task, hand back the rest).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/curve_keys.h"
#include "common/log.h"
#include "common/parse.h"
#include "worker/agent.h"

static const char usage[] =
    "usage: encore-worker --coordinator EP [--models DIR | --tiny] [--device cpu|cuda:N]\n"
    "                     [--name NAME] [--backend engine|sim] [--sim-ms N] [--keys DIR]\n"
    "\n"
    "  --coordinator EP   coordinator endpoint (default tcp://127.0.0.1:7707)\n"
    "  --backend B        engine (the model) or sim: a cheap deterministic stand-in\n"
    "                     for load tests (default engine); with --sim-ms N each denoise\n"
    "                     task takes N ms in all, its compute included\n"
    "  --models DIR       model directory (engine); --tiny: the tiny test model\n"
    "  --device D         cpu or cuda:N (engine)\n"
    "  --name NAME        worker name (default host-pid)\n"
    "  --cache-windows N  window outputs kept for affinity (default 16)\n"
    "  --threads N        cpu threads of the engine (default: one per core)\n"
    "  --keys DIR         CurveZMQ: DIR/worker.key is this worker's pair and\n"
    "                     DIR/coordinator.pub the coordinator's key (for a coordinator\n"
    "                     started with --keys; see deploy/README.md)\n"
    "  --log-level L      error|warn|info|debug\n";

static struct agent *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        agent_stop(running);
}

int main(int argc, char **argv)
{
    struct agent_opts o;
    const char *keys_dir = NULL;
    agent_opts_default(&o);
    o.backend = "engine";
    o.model = NULL;
    log_init("worker");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(a, "--tiny") == 0) {
            o.model = "tiny";
        } else if (!v) {
            fprintf(stderr, "encore-worker: unknown option or missing value '%s'\n%s", a, usage);
            return 2;
        } else if (strcmp(a, "--coordinator") == 0) {
            o.coordinator = argv[++i];
        } else if (strcmp(a, "--backend") == 0) {
            o.backend = argv[++i];
        } else if (strcmp(a, "--models") == 0) {
            const char *base = strrchr(v, '/');
            o.model = base && base[1] ? base + 1 : v;
            o.models_dir = v;
            i++;
        } else if (strcmp(a, "--device") == 0) {
            o.device = argv[++i];
        } else if (strcmp(a, "--name") == 0) {
            o.name = argv[++i];
        } else if (strcmp(a, "--keys") == 0) {
            keys_dir = argv[++i];
        } else if (strcmp(a, "--sim-ms") == 0 || strcmp(a, "--cache-windows") == 0 ||
                   strcmp(a, "--threads") == 0) {
            int n;
            if (parse_int(v, 0, 3600000, &n)) {
                fprintf(stderr, "encore-worker: bad value '%s' for %s\n", v, a);
                return 2;
            }
            if (a[2] == 's')
                o.sim_ms = n;
            else if (a[2] == 't')
                o.threads = n;
            else
                o.cache_windows = n;
            i++;
        } else if (strcmp(a, "--log-level") == 0) {
            int l = log_parse_level(v);
            if (l < 0) {
                fprintf(stderr, "encore-worker: unknown log level '%s'\n", v);
                return 2;
            }
            log_set_level((enum log_level)l);
            i++;
        } else {
            fprintf(stderr, "encore-worker: unknown option '%s'\n%s", a, usage);
            return 2;
        }
    }
    if (strcmp(o.backend, "sim") == 0)
        o.model = "sim";
    else if (!o.model) {
        fprintf(stderr, "encore-worker: name a model with --models DIR or --tiny\n");
        return 2;
    }
    static struct curve_client keys;
    if (keys_dir) {
        if (curve_keys_load_client(keys_dir, "worker", &keys)) {
            fprintf(stderr, "encore-worker: cannot use the CurveZMQ keys in '%s'\n", keys_dir);
            return 2;
        }
        o.curve = &keys;
    }
    struct agent *a;
    int rc = agent_new(&o, &a);
    if (rc)
        return rc == -1 ? 2 : 1;
    running = a;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = agent_run(a);
    running = NULL;
    agent_destroy(&a);
    return rc ? 1 : 0;
}
