/* Lock-free cells of the metrics extension (CHostSupport.h). A double lives as its bit pattern in an atomic
 * 64-bit word and is added to with a compare-and-swap loop: C11 has no atomic fetch-add for floating point. */
#include "CHostSupport.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct mcpp_metric {
    int32_t kind;
    uint32_t bucket_count; /* bounds; the buckets array has one more (+Inf) */
    _Atomic uint64_t value; /* a double's bits: counter/gauge value, histogram sum */
    double *bounds;
    _Atomic uint64_t *buckets;
};

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double real(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void add_double(_Atomic uint64_t *cell, double delta)
{
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(cell, &old, bits(real(old) + delta), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

struct mcpp_metric *mcph_metric_new(int32_t kind, const double *bounds, size_t count)
{
    if (count > MCPH_METRIC_MAX_BUCKETS) return NULL;
    struct mcpp_metric *m = calloc(1, sizeof *m);
    if (m == NULL) return NULL;
    m->kind = kind;
    atomic_init(&m->value, bits(0.0));
    if (kind == MCPH_METRIC_HISTOGRAM) {
        m->bucket_count = (uint32_t)count;
        m->bounds = calloc(count + 1, sizeof *m->bounds);
        m->buckets = calloc(count + 1, sizeof *m->buckets);
        if (m->bounds == NULL || m->buckets == NULL) {
            free(m->bounds);
            free(m->buckets);
            free(m);
            return NULL;
        }
        if (count > 0) memcpy(m->bounds, bounds, count * sizeof *bounds);
        for (size_t i = 0; i <= count; i++) atomic_init(&m->buckets[i], 0);
    }
    return m;
}

int32_t mcph_metric_add(struct mcpp_metric *m, double delta)
{
    if (m == NULL || !isfinite(delta)) return 3;
    switch (m->kind) {
    case MCPH_METRIC_COUNTER:
        if (delta < 0) return 3;
        /* fall through */
    case MCPH_METRIC_GAUGE:
        add_double(&m->value, delta);
        return 0;
    default:
        return 3;
    }
}

int32_t mcph_metric_set(struct mcpp_metric *m, double value)
{
    if (m == NULL || m->kind != MCPH_METRIC_GAUGE || !isfinite(value)) return 3;
    atomic_store_explicit(&m->value, bits(value), memory_order_relaxed);
    return 0;
}

int32_t mcph_metric_observe(struct mcpp_metric *m, double value)
{
    if (m == NULL || m->kind != MCPH_METRIC_HISTOGRAM || !isfinite(value)) return 3;
    uint32_t i = 0;
    while (i < m->bucket_count && value > m->bounds[i]) i++; /* le: a value equal to a bound is in it */
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    add_double(&m->value, value);
    return 0;
}

void mcph_metric_read(const struct mcpp_metric *m, double *value, uint64_t *buckets, size_t room)
{
    if (m == NULL) return;
    if (value != NULL) *value = real(atomic_load_explicit(&((struct mcpp_metric *)m)->value, memory_order_relaxed));
    if (buckets == NULL || m->kind != MCPH_METRIC_HISTOGRAM) return;
    for (size_t i = 0; i <= m->bucket_count && i < room; i++)
        buckets[i] = atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
}
