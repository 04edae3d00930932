/* Deterministic PRNG and sampling helpers of alloc-gen (see gen_rng.h). */
#include "gen_rng.h"

#include <math.h>
#include <stdlib.h>

uint64_t gen_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void gen_rng_seed(gen_rng *r, uint64_t seed, uint64_t stream) {
    /* Mix the stream through splitmix64 first so that nearby (seed, stream)
     * pairs give unrelated states. */
    uint64_t st = stream;
    uint64_t x = seed ^ gen_splitmix64(&st);
    for (int i = 0; i < 4; i++)
        r->s[i] = gen_splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t gen_rng_next(gen_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t gen_rng_below(gen_rng *r, uint64_t n) {
    /* Lemire's nearly-divisionless method: multiply into 128 bits, reject the
     * few low products that would bias the result. */
    unsigned __int128 m = (unsigned __int128)gen_rng_next(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = -n % n;
        while (low < threshold) {
            m = (unsigned __int128)gen_rng_next(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

int64_t gen_rng_range(gen_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)gen_rng_below(r, (uint64_t)(hi - lo) + 1);
}

int gen_rng_chance(gen_rng *r, unsigned per_mille) {
    return gen_rng_below(r, 1000) < per_mille;
}

void gen_rng_shuffle(gen_rng *r, size_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)gen_rng_below(r, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

uint64_t gen_hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

int gen_picker_init(gen_picker *p, const double *w, size_t n) {
    p->n = 0;
    p->cum = NULL;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        if (w[i] > 0)
            sum += w[i];
    if (n == 0 || !(sum > 0))
        return -1;
    p->cum = malloc(n * sizeof *p->cum);
    if (!p->cum)
        return -1;
    /* Integer weights out of 2^40 keep the draw exact and independent of
     * floating-point summation order. */
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t wi = 0;
        if (w[i] > 0) {
            wi = (uint64_t)llround(w[i] / sum * 1099511627776.0);
            if (wi == 0)
                wi = 1;
        }
        acc += wi;
        p->cum[i] = acc;
    }
    p->n = n;
    return 0;
}

void gen_picker_free(gen_picker *p) {
    if (!p)
        return;
    free(p->cum);
    p->cum = NULL;
    p->n = 0;
}

size_t gen_picker_pick(const gen_picker *p, gen_rng *r) {
    uint64_t x = gen_rng_below(r, p->cum[p->n - 1]);
    size_t lo = 0, hi = p->n - 1; /* first i with cum[i] > x */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void gen_zipf_weights(double *w, size_t n, double s) {
    for (size_t k = 0; k < n; k++)
        w[k] = s == 1.0 ? 1.0 / (double)(k + 1) : pow((double)(k + 1), -s);
}

int gen_apportion(int64_t total, const double *w, size_t n, int64_t min_each, int64_t *out) {
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += w[i];
    if (n == 0 || !(sum > 0))
        return -1;
    if (total < (int64_t)n * min_each)
        min_each = 0;
    int64_t rest = total - (int64_t)n * min_each;
    double *frac = malloc(n * sizeof *frac);
    if (!frac)
        return -1;
    int64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        double exact = (double)rest * w[i] / sum;
        double fl = floor(exact);
        out[i] = (int64_t)fl;
        frac[i] = exact - fl;
        given += out[i];
    }
    /* Floating-point error may overshoot by a unit: take it back from the smallest remainder. */
    while (given > rest) {
        size_t worst = n;
        for (size_t i = 0; i < n; i++)
            if (out[i] > 0 && (worst == n || frac[i] < frac[worst]))
                worst = i;
        out[worst]--;
        frac[worst] += 1;
        given--;
    }
    /* Hand the leftover units to the largest remainders, ties to the lower index. */
    while (given < rest) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (frac[i] > frac[best])
                best = i;
        out[best]++;
        frac[best] = -1;
        given++;
    }
    for (size_t i = 0; i < n; i++)
        out[i] += min_each;
    free(frac);
    return 0;
}
