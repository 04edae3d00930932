/* Deterministic pseudo-random numbers for alloc-gen: splitmix64 seeding, the
 * xoshiro256** generator, weighted picks, Zipf weights and exact apportionment.
 * Never rand(): the same seed gives the same numbers on every run. Pure, no I/O. */
#ifndef GEN_RNG_H
#define GEN_RNG_H

#include <stddef.h>
#include <stdint.h>

/* One generator state; a small value type, copied and embedded freely.
 * Not thread-safe: one state per thread. */
typedef struct gen_rng {
    uint64_t s[4];
} gen_rng;

/* Advances *state and returns the next splitmix64 output. */
uint64_t gen_splitmix64(uint64_t *state);

/* Seeds r for (seed, stream): different streams of one seed are independent
 * sequences, so one part of the data never shifts another part. */
void gen_rng_seed(gen_rng *r, uint64_t seed, uint64_t stream);

/* The next 64 random bits (xoshiro256**). */
uint64_t gen_rng_next(gen_rng *r);

/* A uniform integer in [0, n); n must be > 0. Unbiased (Lemire's method). */
uint64_t gen_rng_below(gen_rng *r, uint64_t n);

/* A uniform integer in [lo, hi], lo <= hi. */
int64_t gen_rng_range(gen_rng *r, int64_t lo, int64_t hi);

/* 1 with probability per_mille / 1000, else 0. */
int gen_rng_chance(gen_rng *r, unsigned per_mille);

/* Shuffles idx[0..n) (Fisher-Yates). */
void gen_rng_shuffle(gen_rng *r, size_t *idx, size_t n);

/* A 64-bit FNV-1a hash of a string, to mix names (a period code) into seeds. */
uint64_t gen_hash_str(const char *s);

/* Weighted choice over n outcomes with integer cumulative weights. */
typedef struct gen_picker {
    size_t n;
    uint64_t *cum; /* cum[i] = sum of weights 0..i */
} gen_picker;

/* Builds p from non-negative weights w[0..n) (at least one > 0); every positive
 * weight keeps a nonzero chance. Returns 0, or -1 when out of memory or no
 * weight is positive. p->cum is owned by p: release with gen_picker_free. */
int gen_picker_init(gen_picker *p, const double *w, size_t n);
void gen_picker_free(gen_picker *p);

/* An outcome index in [0, p->n) drawn with the picker's weights. */
size_t gen_picker_pick(const gen_picker *p, gen_rng *r);

/* w[k] = 1 / (k+1)^s for k in [0, n): Zipf weights, the largest first. */
void gen_zipf_weights(double *w, size_t n, double s);

/* Splits total into n non-negative integers proportional to w (largest
 * remainder method, ties to the lower index) that sum exactly to total. When
 * total >= n * min_each every part gets at least min_each. Returns 0, or -1
 * when out of memory or the weights sum to 0. */
int gen_apportion(int64_t total, const double *w, size_t n, int64_t min_each, int64_t *out);

#endif
