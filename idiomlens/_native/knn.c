/* The kNN search's per-row work on the CPU, for idiomlens.representations.geometry.knn.
 *
 * Compiled at first use by idiomlens/_native/__init__.py (any C compiler; without one,
 * or if the build fails, the search runs its numpy path, which gives the same results).
 * Built with -O3 -ffp-contract=off and, with GCC on x86-64, one clone per ISA level
 * (without them where that fails: -DIDIOMLENS_NO_CLONES), so every machine computes the
 * same float operations in the same order.
 *
 * The search ranks row i by h[i, j] = hsq[j] - p[i, j] (float32, one subtraction, the
 * same rounding as numpy's), where p is the product x_i . x_j. The products of a block of
 * rows arrive in "pieces": a ROW piece holds p[t, q] for the block's row t and column
 * col0 + q (row-major, leading dimension ld); a COL piece holds p[q, t] (the transposed
 * layout: the part of the packed upper triangle below the diagonal). group_minima gives
 * every row's group minima, numpy partitions them into a bound on the row's depth-th
 * value, collect gives the entries at or below it in column order, and numpy sorts
 * those: together, a stable sort of every row by (value, column), the row's own column
 * left out, cut at depth (knn._rank_native). exact_f32 / exact_f64 give the exact
 * distances at a few ranks.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(IDIOMLENS_NO_CLONES)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

typedef struct {
    const float *p;  /* the products */
    int64_t ld;      /* leading dimension (floats) */
    int64_t m;       /* columns of h it holds */
    int64_t col0;    /* the first of them */
    int64_t kind;    /* 0: ROW piece p[t * ld + q]; 1: COL piece p[q * ld + t] */
} piece_t;

/* h of the block's row t at piece column q */
static inline float h_at(const piece_t *pc, const float *hsq, int64_t t, int64_t q) {
    const float p = pc->kind == 0 ? pc->p[t * pc->ld + q] : pc->p[q * pc->ld + t];
    return hsq[pc->col0 + q] - p;
}

/* groups of a piece: ROW pieces group column q as q % groups (so the minima of a row are
 * taken side by side), COL pieces as q / size (so those of all rows are) */
static inline int64_t piece_groups(const piece_t *pc, int64_t size) {
    return pc->kind == 0 ? (pc->m >= size ? pc->m / size : pc->m) : (pc->m + size - 1) / size;
}

/* Step 1 of a block's ranking: mins[t * total + g], the minimum of row t's h over its
 * group g (the groups of all pieces side by side, ``total`` in all: piece_groups each),
 * the row's own column left out. size: columns per group; scratch: piece_groups * r
 * floats for the largest COL piece. Returns -1 (and writes nothing) when total is not
 * the pieces' number of groups. */
CLONES
int group_minima(const piece_t *pieces, int64_t n_pieces, const float *hsq, int64_t row0,
                 int64_t r, int64_t size, int64_t total, float *mins, float *scratch) {
    int64_t g0 = 0, want = 0;
    for (int64_t k = 0; k < n_pieces; k++) want += piece_groups(&pieces[k], size);
    if (want != total) return -1; /* the caller sized mins for other groups: write nothing */
    for (int64_t k = 0; k < n_pieces; k++) {
        const piece_t *pc = &pieces[k];
        const int64_t G = piece_groups(pc, size);
        const float *hs = hsq + pc->col0;
        if (pc->kind == 1) {  /* minima of all rows side by side, then transposed */
            for (int64_t i = 0; i < G * r; i++) scratch[i] = INFINITY;
            for (int64_t q = 0; q < pc->m; q++) {
                float *mg = scratch + (q / size) * r;
                const float *pq = pc->p + q * pc->ld;
                const float hq = hs[q];
                for (int64_t t = 0; t < r; t++) {
                    const float v = hq - pq[t];
                    mg[t] = v < mg[t] ? v : mg[t];
                }
            }
            for (int64_t t0 = 0; t0 < r; t0 += 16)
                for (int64_t gb = 0; gb < G; gb += 16)
                    for (int64_t t = t0; t < t0 + 16 && t < r; t++)
                        for (int64_t g = gb; g < gb + 16 && g < G; g++)
                            mins[t * total + g0 + g] = scratch[g * r + t];
        } else {  /* a row's minima side by side */
            for (int64_t t = 0; t < r; t++) {
                const float *pt = pc->p + t * pc->ld;
                float *mt = mins + t * total + g0;
                for (int64_t g = 0; g < G; g++) mt[g] = hs[g] - pt[g];
                for (int64_t q0 = G; q0 < pc->m; q0 += G) {
                    const int64_t e = q0 + G <= pc->m ? G : pc->m - q0;
                    for (int64_t g = 0; g < e; g++) {
                        const float v = hs[q0 + g] - pt[q0 + g];
                        mt[g] = v < mt[g] ? v : mt[g];
                    }
                }
            }
        }
        /* the row's own column: its group's minimum again without it */
        for (int64_t t = 0; t < r; t++) {
            const int64_t q = row0 + t - pc->col0;
            if (q < 0 || q >= pc->m) continue;
            int64_t g, first, step, last;
            if (pc->kind == 1) { g = q / size; first = g * size; step = 1; last = first + size; }
            else { g = q % G; first = g; step = G; last = pc->m; }
            if (last > pc->m) last = pc->m;
            float best = INFINITY;
            for (int64_t c = first; c < last; c += step)
                if (c != q) { const float v = h_at(pc, hsq, t, c); best = v < best ? v : best; }
            mins[t * total + g0 + g] = best;
        }
        g0 += G;
    }
    return 0;
}

/* Step 2: the entries of rows lo .. hi at or below their bound, the row's own column left
 * out, in ascending column order (the pieces come in ascending col0 and do not overlap):
 * values[(t - lo) * cap + i], cols[(t - lo) * cap + i] for the first cap of them,
 * counts[t - lo] all of them. */
CLONES
void collect(const piece_t *pieces, int64_t n_pieces, const float *hsq, int64_t row0,
             int64_t lo, int64_t hi, const float *bound, int64_t cap, float *values,
             int64_t *cols, int64_t *counts) {
    for (int64_t t = lo; t < hi; t++) counts[t - lo] = 0;
    for (int64_t k = 0; k < n_pieces; k++) {
        const piece_t *pc = &pieces[k];
        const float *hs = hsq + pc->col0;
        if (pc->kind == 1) {
            unsigned char hit[264];
            for (int64_t q = 0; q < pc->m; q++) {
                const float *pq = pc->p + q * pc->ld;
                const float hq = hs[q];
                const int64_t col = pc->col0 + q;
                for (int64_t t0 = lo; t0 < hi; t0 += 256) {
                    const int64_t tn = hi - t0 < 256 ? hi - t0 : 256;
                    for (int64_t t = 0; t < tn; t++) hit[t] = (hq - pq[t0 + t]) <= bound[t0 + t];
                    for (int64_t t = tn; t < ((tn + 7) & ~7); t++) hit[t] = 0;
                    for (int64_t u0 = 0; u0 < tn; u0 += 8) {
                        uint64_t w;
                        memcpy(&w, hit + u0, 8);
                        while (w) {
                            const int64_t tt = t0 + u0 + (__builtin_ctzll(w) >> 3);
                            w &= w - 1;
                            if (row0 + tt == col) continue;
                            if (counts[tt - lo] < cap) {
                                values[(tt - lo) * cap + counts[tt - lo]] = hq - pq[tt];
                                cols[(tt - lo) * cap + counts[tt - lo]] = col;
                            }
                            counts[tt - lo]++;
                        }
                    }
                }
            }
        } else {
            unsigned char hit[1032];
            for (int64_t t = lo; t < hi; t++) {
                const float *pt = pc->p + t * pc->ld;
                const float b = bound[t];
                for (int64_t q0 = 0; q0 < pc->m; q0 += 1024) {
                    const int64_t qn = pc->m - q0 < 1024 ? pc->m - q0 : 1024;
                    for (int64_t q = 0; q < qn; q++) hit[q] = (hs[q0 + q] - pt[q0 + q]) <= b;
                    for (int64_t q = qn; q < ((qn + 7) & ~7); q++) hit[q] = 0;
                    for (int64_t q = 0; q < qn; q += 8) {
                        uint64_t w;
                        memcpy(&w, hit + q, 8);
                        while (w) {
                            const int64_t u = q + (__builtin_ctzll(w) >> 3);
                            w &= w - 1;
                            const int64_t col = pc->col0 + q0 + u;
                            if (col == row0 + t) continue;
                            if (counts[t - lo] < cap) {
                                values[(t - lo) * cap + counts[t - lo]] = hs[q0 + u] - pt[q0 + u];
                                cols[(t - lo) * cap + counts[t - lo]] = col;
                            }
                            counts[t - lo]++;
                        }
                    }
                }
            }
        }
    }
}

/* out[t, c] = |x[row0 + t] - x[cols[t, c]]|, float64 differences of the rows (float32
 * in exact_f32, float64 in exact_f64), summed in eight lanes and then pairwise (the same
 * order on every machine). */
#define EXACT(NAME, T)                                                                    \
    CLONES                                                                                \
    void NAME(const T *x, int64_t d, const int64_t *cols, int64_t r, int64_t k,           \
              int64_t row0, double *out) {                                                \
        for (int64_t t = 0; t < r; t++) {                                                 \
            const T *xi = x + (row0 + t) * d;                                             \
            for (int64_t c = 0; c < k; c++) {                                             \
                const T *xj = x + cols[t * k + c] * d;                                    \
                double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                 \
                int64_t e = 0;                                                            \
                for (; e + 8 <= d; e += 8)                                                \
                    for (int l = 0; l < 8; l++) {                                         \
                        const double u = (double)xj[e + l] - (double)xi[e + l];           \
                        acc[l] += u * u;                                                  \
                    }                                                                     \
                for (int l = 0; e + l < d; l++) {                                         \
                    const double u = (double)xj[e + l] - (double)xi[e + l];               \
                    acc[l] += u * u;                                                      \
                }                                                                         \
                const double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +                \
                                 ((acc[4] + acc[5]) + (acc[6] + acc[7]));                 \
                out[t * k + c] = sqrt(s);                                                 \
            }                                                                             \
        }                                                                                 \
    }

EXACT(exact_f32, float)
EXACT(exact_f64, double)
