/* c_limit_loop.c -- the plain-C limit of the C simulator's synaptic work (bench/c_simulator.py).
 *
 * For each layer given on the command line (N_IN N_OUT EVENTS: mean active inputs per sample and
 * step), per sample and step: add the int8 weight rows of EVENTS pre-drawn active inputs into an
 * int32 accumulator of N_OUT values. Nothing else: no neuron update, no event-list scan, no I/O,
 * no rand() in the timed loop (the active lists are drawn before the clock starts). Prints the
 * synaptic events done and the CPU seconds they took (clock()), so events per CPU-second is the
 * per-core limit a simulator doing the same events can be compared against.
 *
 *   c_limit_loop STEPS BATCH N_IN N_OUT EVENTS [N_IN N_OUT EVENTS ...]
 *
 * Compile with -DLIMIT_OUTS='X(1024) X(20)' to give the row loop the layers' output counts as
 * compile-time constants, as the generated simulator has them (gcc -O2 vectorises only loops
 * of known length); other sizes take a generic loop.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_LAYERS 8

/* acc[0..no) += the int8 rows of the n_ev active inputs ev[] of w (row length no) */
#define ROW_LOOP(NO)                                      \
    long a, o;                                            \
    for (o = 0; o < (NO); ++o) {                          \
        acc[o] = 0;                                       \
    }                                                     \
    for (a = 0; a < n_ev; ++a) {                          \
        const int8_t *row = w + (long)ev[a] * (NO);       \
        for (o = 0; o < (NO); ++o) {                      \
            acc[o] += row[o];                             \
        }                                                 \
    }

#ifndef LIMIT_OUTS
#define LIMIT_OUTS
#endif
#define X(NO)                                                                                 \
    static void add_rows_##NO(int32_t *acc, const int8_t *w, const int32_t *ev, long n_ev) \
    {                                                                                         \
        ROW_LOOP(NO)                                                                          \
    }
LIMIT_OUTS
#undef X

static void add_rows(long no, int32_t *acc, const int8_t *w, const int32_t *ev, long n_ev)
{
    switch (no) {
#define X(NO)                              \
    case NO:                               \
        add_rows_##NO(acc, w, ev, n_ev);   \
        return;
        LIMIT_OUTS
#undef X
    default: {
        ROW_LOOP(no)
    }
    }
}

static uint64_t lcg = 88172645463325252ULL;

static uint32_t next_u32(void)
{
    lcg ^= lcg << 13;
    lcg ^= lcg >> 7;
    lcg ^= lcg << 17;
    return (uint32_t)(lcg >> 11);
}

int main(int argc, char **argv)
{
    long steps, batch, t, b, n_layers, l, total_events = 0;
    long n_in[MAX_LAYERS], n_out[MAX_LAYERS], events[MAX_LAYERS];
    int8_t *w[MAX_LAYERS];
    int32_t *act[MAX_LAYERS], *acc;
    int64_t check = 0;
    clock_t c0, c1;
    if (argc < 6 || (argc - 3) % 3 != 0 || (argc - 3) / 3 > MAX_LAYERS) {
        fputs("usage: c_limit_loop STEPS BATCH N_IN N_OUT EVENTS [N_IN N_OUT EVENTS ...]\n", stderr);
        return 2;
    }
    steps = atol(argv[1]);
    batch = atol(argv[2]);
    n_layers = (argc - 3) / 3;
    long max_out = 1;
    for (l = 0; l < n_layers; ++l) {
        long i, k;
        n_in[l] = atol(argv[3 + 3 * l]);
        n_out[l] = atol(argv[4 + 3 * l]);
        events[l] = atol(argv[5 + 3 * l]);
        if (n_in[l] < 1 || n_out[l] < 1 || events[l] < 0 || events[l] > n_in[l]) {
            return 2;
        }
        max_out = n_out[l] > max_out ? n_out[l] : max_out;
        w[l] = (int8_t *)malloc((size_t)(n_in[l] * n_out[l]));
        act[l] = (int32_t *)malloc(sizeof(int32_t) * (size_t)(steps * batch * (events[l] + 1)));
        if (w[l] == 0 || act[l] == 0) {
            return 7;
        }
        for (i = 0; i < n_in[l] * n_out[l]; ++i) {
            w[l][i] = (int8_t)(next_u32() & 0xFF);
        }
        for (i = 0; i < steps * batch; ++i) { /* EVENTS distinct rows per sample-step, ascending */
            long picked = 0;
            for (k = 0; k < n_in[l] && picked < events[l]; ++k) {
                if ((long)(next_u32() % (uint32_t)(n_in[l] - k)) < events[l] - picked) {
                    act[l][i * events[l] + picked++] = (int32_t)k;
                }
            }
        }
    }
    acc = (int32_t *)calloc((size_t)max_out, sizeof(int32_t));
    if (acc == 0) {
        return 7;
    }
    c0 = clock();
    for (t = 0; t < steps; ++t) {
        for (b = 0; b < batch; ++b) {
            for (l = 0; l < n_layers; ++l) {
                add_rows(n_out[l], acc, w[l], act[l] + (t * batch + b) * events[l], events[l]);
                check += acc[(t + b) % n_out[l]];
            }
        }
    }
    c1 = clock();
    for (l = 0; l < n_layers; ++l) {
        total_events += steps * batch * events[l] * n_out[l];
    }
    printf("{\"events\": %ld, \"cpu_s\": %.6f, \"checksum\": %lld}\n", total_events,
           (double)(c1 - c0) / CLOCKS_PER_SEC, (long long)check);
    return 0;
}
