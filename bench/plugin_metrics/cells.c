/* Nanoseconds per update of the metrics extension's cells (Sources/CHostSupport/metrics.c), from 1 and from N
 * threads at once on one series, against the obvious alternative: a double behind a pthread mutex.
 * Built and run by bench/plugin_metrics/run.sh. */
#define _POSIX_C_SOURCE 200809L
#include "CHostSupport.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static struct mcpp_metric *cell, *hist;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static double locked_value;
static long per_thread;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *run_add(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++) mcph_metric_add(cell, 1);
    return NULL;
}

static void *run_observe(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++) mcph_metric_observe(hist, (double)(i & 1023) / 100.0);
    return NULL;
}

static void *run_mutex(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++) {
        pthread_mutex_lock(&lock);
        locked_value += 1;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

/* ns per update over all threads' updates (wall time / total updates * threads: each thread's own cost). */
static double measure(void *(*fn)(void *), int threads)
{
    pthread_t t[64];
    double start = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, fn, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    return (now() - start) * 1e9 / (double)per_thread;
}

int main(int argc, char **argv)
{
    per_thread = argc > 1 ? atol(argv[1]) : 20000000;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    cell = mcph_metric_new(0, NULL, 0);
    hist = mcph_metric_new(2, bounds, sizeof bounds / sizeof bounds[0]);
    double value;
    for (int n = 1; n <= threads; n += threads - 1 > 0 ? threads - 1 : 1) {
        double add = measure(run_add, n), obs = measure(run_observe, n), mtx = measure(run_mutex, n);
        printf("RESULT threads=%d add_ns=%.2f observe_ns=%.2f mutex_ns=%.2f\n", n, add, obs, mtx);
        if (n == threads) break;
    }
    mcph_metric_read(cell, &value, NULL, 0);
    double expect = 0;
    for (int n = 1; n <= threads; n += threads - 1 > 0 ? threads - 1 : 1) {
        expect += (double)per_thread * n;
        if (n == threads) break;
    }
    if (value != expect) {
        fprintf(stderr, "counter is %.0f, expected %.0f: updates were lost\n", value, expect);
        return 1;
    }
    return 0;
}
