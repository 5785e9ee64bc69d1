/* api.c: the daemon's HTTP endpoints (/metrics, /healthz, /v1/pools,
 * /v1/pools/{name}/demand) and its metrics. Handlers only read daemon state
 * (same thread as the loop) and never start side effects. */
#include "daemon/daemon_int.h"
#include "engine/broker.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/metrics.h"
#include "http/server.h"
#include "util/log.h"

static const char *const live_states[] = { "registering", "starting", "waiting", "running", "stopping" };

void api_forge_hook(void *ud, const struct forgejo_event *ev)
{
        struct daemon *d = ud;

        metrics_inc(d->m_requests, (const char *[]){ ev->forge, ev->route, ev->code }, 1);
}

void api_count_launch(struct daemon *d, const struct inst *in, const char *result)
{
        metrics_inc(d->m_launches, (const char *[]){ in->row.pool, result }, 1);
}

void api_observe_wait(struct daemon *d, const struct inst *in, double seconds)
{
        metrics_observe(d->m_wait, (const char *[]){ in->row.pool }, seconds);
}

void api_observe_worker_start(struct daemon *d, const struct inst *in, double seconds)
{
        metrics_observe(d->m_wstart, (const char *[]){ in->row.provider }, seconds);
}

void api_count_rejected(struct daemon *d, const char *forge, const char *what)
{
        metrics_inc(d->m_rejected, (const char *[]){ forge, what }, 1);
}

void api_count_relay_failure(struct daemon *d, const char *pool, const char *method)
{
        metrics_inc(d->m_brelay_failed, (const char *[]){ pool, method }, 1);
}

static int refresh_gauges(struct daemon *d)
{
        size_t np = d->n_pools;
        int64_t (*counts)[5] = calloc(np ? np : 1, sizeof(*counts));

        if (!counts)
                return -ENOMEM;
        for (size_t i = 0; i < d->n_insts; i++) {
                const struct inst *in = d->insts[i];
                if (in->pool >= 0 && (size_t)in->pool < np && store_state_live(in->row.state))
                        counts[in->pool][in->row.state]++;
        }
        for (size_t p = 0; p < np; p++) {
                const char *name = d->pools[p].cfg->name;
                const struct group *g = &d->groups[d->pools[p].group];
                metrics_set(d->m_waiting, (const char *[]){ name }, d->pools[p].stats.waiting);
                metrics_set(d->m_desired, (const char *[]){ name }, d->pools[p].stats.desired);
                metrics_set(d->m_demand_age, (const char *[]){ name }, demand_group_age_s(d, g));
                metrics_set(d->m_demand_stale, (const char *[]){ name }, !demand_group_fresh(d, g));
                for (int s = 0; s < 5; s++)
                        metrics_set(d->m_runners, (const char *[]){ name, live_states[s] }, (double)counts[p][s]);
                struct broker_pool_status bs;
                if (broker_pool_status(d, name, &bs) == 0) {
                        metrics_set(d->m_btasks, (const char *[]){ name, "held" }, bs.held);
                        metrics_set(d->m_btasks, (const char *[]){ name, "running" }, bs.running);
                        metrics_set(d->m_btasks, (const char *[]){ name, "finishing" }, bs.finishing);
                        metrics_set(d->m_brunner, (const char *[]){ name }, strcmp(bs.runner, "ready") == 0);
                }
        }
        free(counts);
        for (size_t f = 0; f < d->n_forges; f++)
                metrics_set(d->m_forge_up, (const char *[]){ d->forges[f].cfg->name }, d->forges[f].up);
        return 0;
}

static int h_metrics(struct http_request *req, struct http_response *resp, void *ud)
{
        struct daemon *d = ud;

        int r = refresh_gauges(d);

        if (r < 0)
                return r;
        resp->content_type = METRICS_CONTENT_TYPE;
        return metrics_render(d->metrics, &resp->body);
}

static int h_healthz(struct http_request *req, struct http_response *resp, void *ud)
{
        return http_response_text(resp, 200, "application/json", "{\"status\":\"ok\"}\n");
}

static int send_json(struct http_response *resp, int status, json_t *j)
{
        char *s;
        int r;

        if (!j)
                return -ENOMEM;
        s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        json_decref(j);
        if (!s)
                return -ENOMEM;
        r = http_response_text(resp, status, "application/json", s);
        free(s);
        return r;
}

static json_t *pool_json(struct daemon *d, size_t p)
{
        const struct dpool *dp = &d->pools[p];
        json_t *labels = json_array(), *j;
        struct broker_pool_status bs;

        for (size_t k = 0; k < dp->cfg->labels.n; k++)
                json_array_append_new(labels, json_string(dp->cfg->labels.v[k]));
        const struct group *g = &d->groups[dp->group];

        j = json_pack("{s:s, s:s, s:s, s:o, s:i, s:i, s:i, s:i, s:i, s:I, s:b, s:b, s:f}",
                         "name", dp->cfg->name,
                         "mode", config_pool_mode_name(dp->cfg->mode),
                         "scope", dp->cfg->scope_text,
                         "labels", labels,
                         "waiting", dp->stats.waiting,
                         "starting", dp->stats.starting,
                         "idle", dp->stats.idle,
                         "busy", dp->stats.busy,
                         "stopping", dp->stats.stopping,
                         "max_runners", (json_int_t)dp->cfg->max_runners,
                         "enabled", dp->enabled,
                         "demand_stale", !demand_group_fresh(d, g),
                         "demand_age_seconds", demand_group_age_s(d, g));
        if (j && broker_pool_status(d, dp->cfg->name, &bs) == 0)
                json_object_set_new(j, "broker",
                                    json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:i}", "runner", bs.runner,
                                              "runner_id", (json_int_t)bs.runner_id, "room", bs.room,
                                              "tasks_held", bs.held, "tasks_running", bs.running,
                                              "tasks_finishing", bs.finishing, "relays_in_flight", bs.relays));
        return j;
}

static int h_pools(struct http_request *req, struct http_response *resp, void *ud)
{
        struct daemon *d = ud;
        json_t *a = json_array();

        if (!a)
                return -ENOMEM;
        for (size_t p = 0; p < d->n_pools; p++)
                json_array_append_new(a, pool_json(d, p));
        return send_json(resp, 200, a);
}

/* The per-pool demand for KEDA's metrics-api scaler: `desired` is what a
 * ScaledJob/ScaledObject should target (valueLocation: desired). */
static int h_demand(struct http_request *req, struct http_response *resp, void *ud)
{
        struct daemon *d = ud;
        const char *name = http_request_param(req, "name");

        for (size_t p = 0; p < d->n_pools; p++) {
                const struct dpool *dp = &d->pools[p];
                if (strcmp(dp->cfg->name, name) != 0)
                        continue;
                const struct group *g = &d->groups[dp->group];
                /* During a forge outage the figures are the last known
                 * ones (stale: true), never a drop to 0 that would make
                 * KEDA scale the pool away. */
                return send_json(resp, 200, json_pack("{s:s, s:i, s:i, s:i, s:b, s:f}", "pool", dp->cfg->name,
                                                      "waiting", dp->stats.waiting,
                                                      "running", dp->stats.running,
                                                      "desired", dp->stats.desired,
                                                      "stale", !demand_group_fresh(d, g),
                                                      "age_seconds", demand_group_age_s(d, g)));
        }
        return http_response_error(resp, 404, "no such pool");
}

static void access_log(const struct http_access *a, void *ud)
{
        log_debug("http", "request", KS("method", a->method), KS("path", a->path),
                  KS("remote", a->remote), KI("status", a->status), KI("ms", a->duration_ms));
}

int api_init(struct daemon *d)
{
        static const double wait_buckets[] = { 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60, 120, 300, 600 };
        static const double start_buckets[] = { 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300 };
        char listen[300];
        int r;

        d->metrics = metrics_new();
        if (!d->metrics)
                return -ENOMEM;
        d->m_waiting = metrics_gauge(d->metrics, "forgescale_pool_jobs_waiting",
                                     "Waiting jobs this pool should serve (latest listing).",
                                     1, (const char *[]){ "pool" });
        d->m_desired = metrics_gauge(d->metrics, "forgescale_pool_runners_desired",
                                     "Runners the pool wants: min(max_runners, busy + waiting + min_idle).",
                                     1, (const char *[]){ "pool" });
        d->m_runners = metrics_gauge(d->metrics, "forgescale_pool_runners",
                                     "Live instances of the pool by state.",
                                     2, (const char *[]){ "pool", "state" });
        d->m_wait = metrics_histogram(d->metrics, "forgescale_job_wait_seconds",
                                      "Time from a job first seen waiting to its claim by our runner.",
                                      1, (const char *[]){ "pool" },
                                      sizeof(wait_buckets) / sizeof(wait_buckets[0]), wait_buckets);
        d->m_wstart = metrics_histogram(d->metrics, "forgescale_worker_start_seconds",
                                        "Time from asking a provider for a worker to its start being "
                                        "reported (process spawned, container started, pod running): "
                                        "the provider's own part of a launch.",
                                        1, (const char *[]){ "provider" },
                                        sizeof(start_buckets) / sizeof(start_buckets[0]), start_buckets);
        d->m_requests = metrics_counter(d->metrics, "forgescale_forge_requests_total",
                                        "Requests made to the forge API, by route pattern and HTTP status.",
                                        3, (const char *[]){ "forge", "route", "code" });
        d->m_launches = metrics_counter(d->metrics, "forgescale_launches_total",
                                        "Finished launches by outcome: claimed (ran its job), wasted "
                                        "(stopped unused: timeout, job gone or taken), failed, or the "
                                        "engine's refusal: unreachable, image, quota, rejected, "
                                        "unschedulable, engine.",
                                        2, (const char *[]){ "pool", "result" });
        d->m_btasks = metrics_gauge(d->metrics, "forgescale_broker_tasks",
                                    "Tasks a broker pool holds, by state: held (no worker took it yet), running, "
                                    "finishing (being reported failed).",
                                    2, (const char *[]){ "pool", "state" });
        d->m_brunner = metrics_gauge(d->metrics, "forgescale_broker_runner_ready",
                                     "1 when the broker pool's runner is registered, declared and its last call "
                                     "to the forge worked.",
                                     1, (const char *[]){ "pool" });
        d->m_brelay_failed = metrics_counter(d->metrics, "forgescale_broker_relay_failures_total",
                                             "Worker calls (UpdateLog, UpdateTask) a broker pool could not relay "
                                             "to the forge; the worker keeps what it sent and sends it again.",
                                             2, (const char *[]){ "pool", "method" });
        d->m_forge_up = metrics_gauge(d->metrics, "forgescale_forge_up",
                                      "1 when the forge's last answer was usable: an HTTP status below 500 "
                                      "with a readable body. 0 on no answer, a 5xx or a malformed body.",
                                      1, (const char *[]){ "forge" });
        d->m_demand_age = metrics_gauge(d->metrics, "forgescale_pool_demand_age_seconds",
                                        "Seconds since the pool's last good job listing (-1: none yet).",
                                        1, (const char *[]){ "pool" });
        d->m_demand_stale = metrics_gauge(d->metrics, "forgescale_pool_demand_stale",
                                          "1 while the pool's demand is the last known one because the "
                                          "listing fails or is late (forge unreachable).",
                                          1, (const char *[]){ "pool" });
        d->m_rejected = metrics_counter(d->metrics, "forgescale_forge_rejected_total",
                                        "What the forge sent that forgescale could not act on: jobs in a "
                                        "shape it cannot run (each counted once), job listings over the "
                                        "size cap (each time; demand then stays at its last value).",
                                        2, (const char *[]){ "forge", "what" });
        if (!d->m_rejected || !d->m_demand_age || !d->m_demand_stale || !d->m_waiting || !d->m_desired || !d->m_runners || !d->m_wait || !d->m_wstart || !d->m_requests ||
            !d->m_launches || !d->m_forge_up)
                return -ENOMEM;

        if (d->cfg->listen_host && strchr(d->cfg->listen_host, ':'))
                snprintf(listen, sizeof(listen), "[%s]:%d", d->cfg->listen_host, d->cfg->listen_port);
        else
                snprintf(listen, sizeof(listen), "%s:%d",
                         d->cfg->listen_host && strcmp(d->cfg->listen_host, "localhost") != 0
                                 ? d->cfg->listen_host : "127.0.0.1",
                         d->cfg->listen_port);
        struct http_server_config hc = { .listen = listen, .access_log = access_log };
        r = http_server_new(d->loop, &hc, &d->http);
        if (r < 0) {
                log_error("http", "cannot listen", KS("listen", d->cfg->listen), KERR(r));
                return r;
        }
        if ((r = http_server_route(d->http, "GET", "/metrics", h_metrics, d)) < 0 ||
            (r = http_server_route(d->http, "GET", "/healthz", h_healthz, d)) < 0 ||
            (r = http_server_route(d->http, "GET", "/v1/pools", h_pools, d)) < 0 ||
            (r = http_server_route(d->http, "GET", "/v1/pools/{name}/demand", h_demand, d)) < 0)
                return r;
        log_info("http", "listening", KS("address", listen), KI("port", http_server_port(d->http)));
        return 0;
}

void api_done(struct daemon *d)
{
        http_server_free(d->http);
        d->http = NULL;
        metrics_free(d->metrics);
        d->metrics = NULL;
}
