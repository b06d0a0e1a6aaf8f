/* The phase-2 head's training steps in C: what train.head_training._FusedHead.train_epoch does per batch,
 * without Python or torch dispatch between the steps (72,780 steps at season-9 scale, ~50 us each on one Zen 5 core,
 * ~36 of them in the two matmuls).
 *
 * Per batch of `batch` rows of the chunk:
 *   inputs = features[index]                   (copy_half_rows: fp16 rows as they are, which the tiles widen;
 *                                               gather_rows: fp32, or fp16 widened; each thread its share of rows)
 *   logits = inputs . theta^T                  (forward_rows: the same rows)
 *   dlogits = d loss / d logits, x batch_size  (loss_gradient: the one place that knows each loss; same rows)
 *   grad = dlogits^T . inputs                  (gradient_columns: each thread its share of the columns; the bias
 *                                               is a column of ones in inputs)
 *   Adam on theta                              (adam_range: each thread on its columns of every class row)
 * The gradient is kept batch_size times the loss's and Adam's eps scaled to match (see head_training.py).
 *
 * Why its own matmuls and threads rather than the BLAS sgemm torch calls: at 64 x 528 x 52 a BLAS call spends
 * much of its time deciding, packing and waking its threads (torch.mm ran the matmul-only loop in 6.2-7.3 s against
 * 2.6-3.0 s here), and OpenMP's threads spin between calls against the very cores the next step needs. Here the two
 * matmuls are register-tiled FMA loops over the batch, which fits in L2, and `threads` threads (the caller plus
 * pthreads started per call) meet at two spin barriers per step. Every element of logits and grad is computed by
 * the same operations in the same order whichever tile and thread compute it, so results do not depend on the
 * thread count (tests check they are bitwise equal).
 * Built by `make setup` (Makefile: headloop); head_training.py falls back to its torch loop without it.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__SSE__)
#include <immintrin.h>
/* Denormals flushed to zero inside the loop only (each thread's MXCSR is restored): Adam's second moment of a rare
 * class's weights decays into the denormal range, where every operation costs ~100x; values below 1e-38 change
 * nothing at the 1e-5 the tests hold the loop to. torch.set_flush_denormal does the same process-wide. */
#define FLUSH_DENORMALS_BEGIN const unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040);
#define FLUSH_DENORMALS_END _mm_setcsr(saved_csr);
#define SPIN_PAUSE() _mm_pause()
#else
#define FLUSH_DENORMALS_BEGIN
#define FLUSH_DENORMALS_END
#define SPIN_PAUSE() ((void)0)
#endif

enum { LOSS_SOFTMAX = 0, LOSS_FOCAL = 1, LOSS_SIGMOID_FOCAL = 2 };
enum { MAX_THREADS = 64 };

#define HEADLOOP_ABI 7
int headloop_abi(void) { return HEADLOOP_ABI; }

/* The x86 extensions this build may use (the Makefile compiles with -march=native on the building machine), as
 * bits in the order of headloop.py's ISA_FLAGS. A library built on one machine can be run on an older one (a
 * cluster's login node and its compute nodes share the folder): an instruction the CPU lacks would kill the process
 * with SIGILL, so the loader compares these with the running CPU's flags before calling anything else. This
 * function itself is a constant return, safe on any CPU. */
int headloop_isa(void) {
    int isa = 0;
#ifdef __AVX__
    isa |= 1 << 0;
#endif
#ifdef __AVX2__
    isa |= 1 << 1;
#endif
#ifdef __FMA__
    isa |= 1 << 2;
#endif
#ifdef __AVX512F__
    isa |= 1 << 3;
#endif
#ifdef __AVX512BW__
    isa |= 1 << 4;
#endif
#ifdef __AVX512DQ__
    isa |= 1 << 5;
#endif
#ifdef __AVX512VL__
    isa |= 1 << 6;
#endif
#ifdef __AVX512CD__
    isa |= 1 << 7;
#endif
#ifdef __BMI2__
    isa |= 1 << 8;
#endif
#ifdef __F16C__
    isa |= 1 << 9;
#endif
    return isa;
}

/* ---- the two matmuls ---------------------------------------------------------------------------------------- */

/* One vector: 16 floats (a ZMM register) with AVX-512, else 8 (one AVX register, or two SSE ones). Rows are
 * multiples of 16 floats (head_training.ROW_ALIGN), so the loops below have no scalar tails along a row; loads go
 * through memcpy, which compiles to unaligned moves. 16 lanes are worth it on CPUs that run 512-bit FMAs at full
 * width (the dev VM's Zen 5 took 18 us for a 64-row forward pass at 16 lanes against 38 us at 8). */
#if defined(__AVX512F__)
#define LANES 16
#else
#define LANES 8
#endif
typedef float vfloat __attribute__((vector_size(LANES * 4)));
typedef int32_t vint __attribute__((vector_size(LANES * 4)));
static inline vfloat loadv(const float *p) { vfloat v; memcpy(&v, p, sizeof v); return v; }
static inline void storev(float *p, vfloat v) { memcpy(p, &v, sizeof v); }

/* out[j] = the sum of the lanes of in[bitreverse(j)], by a tree of shuffles and adds over all LANES vectors at
 * once (log2(LANES) levels, 2 shuffles and 1 add per pair) instead of one serial chain of adds per vector, which
 * -fno-associative-math would keep in order: that chain took a third of the forward pass. Every vector's lanes are
 * summed in the same tree (lane l with l + LANES/2, then l + LANES/4, ...), so a sum's rounding does not depend on
 * which vectors share the call. */
static inline vfloat sum_lanes_of_each(vfloat in[LANES]) {
#if LANES == 16
    static const vint low[4] = {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
                                {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
                                {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
                                {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}};
    static const vint high[4] = {{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
                                 {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
                                 {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
                                 {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}};
    enum { LEVELS = 4 };
#else
    static const vint low[3] = {{0, 1, 2, 3, 8, 9, 10, 11}, {0, 1, 8, 9, 4, 5, 12, 13}, {0, 8, 2, 10, 4, 12, 6, 14}};
    static const vint high[3] = {{4, 5, 6, 7, 12, 13, 14, 15}, {2, 3, 10, 11, 6, 7, 14, 15},
                                 {1, 9, 3, 11, 5, 13, 7, 15}};
    enum { LEVELS = 3 };
#endif
    vfloat level[LANES];
    memcpy(level, in, sizeof level);
    int count = LANES;
    for (int depth = 0; depth < LEVELS; depth++) {
        count /= 2;
        for (int j = 0; j < count; j++)
            level[j] = __builtin_shuffle(level[2 * j], level[2 * j + 1], low[depth]) +
                       __builtin_shuffle(level[2 * j], level[2 * j + 1], high[depth]);
    }
    return level[0];
}

static inline int bit_reverse(int j) {
    int r = 0;
    for (int bit = 1; bit < LANES; bit <<= 1, j >>= 1) r = (r << 1) | (j & 1);
    return r;
}

/* Where element [row][class] of a batch's logits or dlogits lives: row * row + class * cls floats from the start.
 * Row-major (cls 1) for validation and the per-row losses; class-major (row 1, each class's batch contiguous) for
 * the softmax, whose loss then runs a vector of rows at a time (see softmax_rows). */
typedef struct { int64_t row, cls; } layout;

/* Register tiles. Forward: RB rows x CB classes = LANES accumulators, reduced by one sum_lanes_of_each (with 32
 * AVX-512 registers 8 x 2 = 16 accumulators + 8 rows + 1; with 16 AVX registers 4 x 2 = 8 + 4 + 1). Gradient: CB
 * classes x KB vectors (AVX-512: 8 x 2, 16 + 2 + 1; AVX: 4 x 3, 12 + 3 + 1). Measured on the Zen 5 VM, 64 rows x
 * 512 x 52 of fp32 rows: forward 8 x 2 190 GFLOP/s (4 x 4: 175), gradient 8 x 2 231 (4 x 4: 173, 13 x 2: 216).
 * Fewer accumulators leave the FMA units waiting on their 4-cycle latency; more would spill. */
#if LANES == 16
#define FORWARD_ROWS 8
#define FORWARD_CLASSES 2
#define HALF_FORWARD_ROWS 4
#define HALF_FORWARD_CLASSES 4
#define GRADIENT_CLASSES 8
#define GRADIENT_VECTORS 2
#else
#define FORWARD_ROWS 4
#define FORWARD_CLASSES 2
#define HALF_FORWARD_ROWS 4
#define HALF_FORWARD_CLASSES 2
#define GRADIENT_CLASSES 4
#define GRADIENT_VECTORS 3
#endif
/* The training steps' rows are fp16 (the feature cache's type) where the features are: each step copies its rows as
 * they are into a batch buffer, and the tiles widen each vector as they load it (exact: every fp16 is an fp32).
 * Widening them all into an fp32 batch first wrote and re-read twice the bytes: 4.1-4.4 us of a ~47 us step went to
 * that gather, and the fp16 steps took 7 % fewer cycles in a C harness that alternated the two (bench/README.md,
 * fifth round). The forward tile over fp16 rows is 4 x 4 at 16 lanes (4 widenings and 4 theta loads per 16 FMAs;
 * 8 x 2 needs 8 widenings); HALF_FORWARD_ROWS divides FORWARD_ROWS, the unit of the threads' shares. Every tile
 * shape gives the same bits (see FORWARD_TILE), so the fp16 and fp32 steps train alike. Without F16C nothing is
 * fp16 (copies_fp16) and widen is never called. */
#if defined(__F16C__)
static inline vfloat widen(const uint16_t *p) {
#if LANES == 16
    return (vfloat)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
#else
    return (vfloat)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
#endif
}
#define HAS_FP16_TILES 1
#else
#define HAS_FP16_TILES 0
#endif
/* Left alone, GCC folds a vector used by several FMAs into each FMA as a memory operand: one load per FMA instead of
 * one per vector, which makes the forward tile load-bound (measured 43 vs 73 GFLOP/s at 8 lanes). An empty asm that
 * "changes" the value forces it into a register. */
#if defined(__GNUC__) && defined(__AVX__)  /* "v": a register that holds the whole vector */
#define KEEP_IN_REGISTER(value) __asm__("" : "+v"(value))
#else
#define KEEP_IN_REGISTER(value) ((void)0)
#endif

/* logits[r][c] = x[r] . theta[c] for an RB x CB tile (x, theta: rows of `width`; logits laid out as `out`). The
 * edge tiles (RB or CB 1) pad the reduction with zeros, so each logit is rounded as in a full tile. */
#define FORWARD_TILE(NAME, RB, CB, T, LOAD)                                                                        \
    static inline void NAME(const T *restrict x, const float *restrict theta, float *restrict logits, int width,  \
                            layout out) {                                                                         \
        vfloat acc[RB][CB];                                                                                        \
        for (int r = 0; r < RB; r++)                                                                               \
            for (int c = 0; c < CB; c++) acc[r][c] = (vfloat){0};                                                  \
        for (int k = 0; k < width; k += LANES) {                                                                   \
            vfloat row[RB];                                                                                        \
            for (int r = 0; r < RB; r++) row[r] = LOAD(x + (int64_t)r * width + k);                                \
            for (int c = 0; c < CB; c++) {                                                                         \
                vfloat t = loadv(theta + (int64_t)c * width + k);                                                  \
                KEEP_IN_REGISTER(t);                                                                               \
                for (int r = 0; r < RB; r++) acc[r][c] += row[r] * t;                                              \
            }                                                                                                      \
        }                                                                                                          \
        vfloat in[LANES];                                                                                          \
        for (int j = 0; j < LANES; j++) {                                                                          \
            const int a = bit_reverse(j);                                                                          \
            in[j] = a < RB * CB ? acc[a / CB][a % CB] : (vfloat){0};                                               \
        }                                                                                                          \
        const vfloat sums = sum_lanes_of_each(in);                                                                 \
        for (int r = 0; r < RB; r++)                                                                               \
            for (int c = 0; c < CB; c++) logits[r * out.row + c * out.cls] = sums[r * CB + c];                     \
    }
FORWARD_TILE(forward_tile, FORWARD_ROWS, FORWARD_CLASSES, float, loadv)
FORWARD_TILE(forward_tile_row, 1, FORWARD_CLASSES, float, loadv)
FORWARD_TILE(forward_tile_class, FORWARD_ROWS, 1, float, loadv)
FORWARD_TILE(forward_tile_one, 1, 1, float, loadv)
#if HAS_FP16_TILES
FORWARD_TILE(half_tile, HALF_FORWARD_ROWS, HALF_FORWARD_CLASSES, uint16_t, widen)
FORWARD_TILE(half_tile_row, 1, HALF_FORWARD_CLASSES, uint16_t, widen)
FORWARD_TILE(half_tile_class, HALF_FORWARD_ROWS, 1, uint16_t, widen)
FORWARD_TILE(half_tile_one, 1, 1, uint16_t, widen)

/* forward_rows over fp16 rows. */
static void forward_half_rows(const uint16_t *x, const float *theta, float *logits, layout out, int r0, int r1,
                              int width, int classes) {
    int r = r0;
    for (; r + HALF_FORWARD_ROWS <= r1; r += HALF_FORWARD_ROWS) {
        const uint16_t *xr = x + (int64_t)r * width;
        float *at = logits + r * out.row;
        int c = 0;
        for (; c + HALF_FORWARD_CLASSES <= classes; c += HALF_FORWARD_CLASSES)
            half_tile(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);
        for (; c < classes; c++) half_tile_class(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);
    }
    for (; r < r1; r++) {
        const uint16_t *xr = x + (int64_t)r * width;
        float *at = logits + r * out.row;
        int c = 0;
        for (; c + HALF_FORWARD_CLASSES <= classes; c += HALF_FORWARD_CLASSES)
            half_tile_row(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);
        for (; c < classes; c++) half_tile_one(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);
    }
}
#endif

/* logits rows [r0, r1) of the batch x (rows of width; fp16 where half) against every class of theta. */
static void forward_rows(const void *rows, int half, const float *theta, float *logits, layout out, int r0, int r1,
                         int width, int classes) {
#if HAS_FP16_TILES
    if (half) {
        forward_half_rows(rows, theta, logits, out, r0, r1, width, classes);
        return;
    }
#endif
    (void)half;
    const float *x = rows;
    int r = r0;
    for (; r + FORWARD_ROWS <= r1; r += FORWARD_ROWS) {
        const float *xr = x + (int64_t)r * width;
        float *at = logits + r * out.row;
        int c = 0;
        for (; c + FORWARD_CLASSES <= classes; c += FORWARD_CLASSES)
            forward_tile(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);
        for (; c < classes; c++) forward_tile_class(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);
    }
    for (; r < r1; r++) {
        const float *xr = x + (int64_t)r * width;
        float *at = logits + r * out.row;
        int c = 0;
        for (; c + FORWARD_CLASSES <= classes; c += FORWARD_CLASSES)
            forward_tile_row(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);
        for (; c < classes; c++) forward_tile_one(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);
    }
}

/* grad[c][k..] = sum over the batch's rows i of dlogits[i][c] * x[i][k..], for CB classes x KB vectors; rows are
 * summed in order, so every element is rounded the same whichever tile computes it. */
#define GRADIENT_TILE(NAME, CB, KB, T, LOAD)                                                                       \
    static void NAME(const void *rows_x, const float *restrict dlogits, float *restrict grad, int rows, int width, \
                     layout in) {                                                                                  \
        const T *restrict x = rows_x;                                                                              \
        vfloat acc[CB][KB];                                                                                        \
        for (int c = 0; c < CB; c++)                                                                               \
            for (int k = 0; k < KB; k++) acc[c][k] = (vfloat){0};                                                  \
        for (int i = 0; i < rows; i++) {                                                                           \
            vfloat row[KB];                                                                                        \
            for (int k = 0; k < KB; k++) row[k] = LOAD(x + (int64_t)i * width + k * LANES);                        \
            for (int c = 0; c < CB; c++) {                                                                         \
                const float d = dlogits[i * in.row + c * in.cls];                                                  \
                for (int k = 0; k < KB; k++) acc[c][k] += d * row[k];                                              \
            }                                                                                                      \
        }                                                                                                          \
        for (int c = 0; c < CB; c++)                                                                               \
            for (int k = 0; k < KB; k++) storev(grad + (int64_t)c * width + k * LANES, acc[c][k]);                 \
    }
typedef void (*gradient_tile_fn)(const void *, const float *restrict, float *restrict, int, int, layout);
/* Edge tiles: the class tail in blocks of 4, 2, 1 (52 classes = 6 x 8 + 4) and the column tail in single vectors;
 * each over fp32 rows and (half_) over fp16 rows. */
#if HAS_FP16_TILES
#define HALF_GRADIENT_TILES(CB)                                                                                    \
    GRADIENT_TILE(half_gradient_##CB##_1, CB, 1, uint16_t, widen)                                                  \
    GRADIENT_TILE(half_gradient_##CB##_k, CB, GRADIENT_VECTORS, uint16_t, widen)
#define HALF_GRADIENT_FNS(CB) , half_gradient_##CB##_1, half_gradient_##CB##_k
#else
#define HALF_GRADIENT_TILES(CB)
#define HALF_GRADIENT_FNS(CB) , 0, 0
#endif
#define GRADIENT_TILES(CB)                                                                                         \
    GRADIENT_TILE(gradient_##CB##_1, CB, 1, float, loadv)                                                          \
    GRADIENT_TILE(gradient_##CB##_k, CB, GRADIENT_VECTORS, float, loadv) HALF_GRADIENT_TILES(CB)
GRADIENT_TILES(GRADIENT_CLASSES)
#if GRADIENT_CLASSES > 4
GRADIENT_TILES(4)
#endif
GRADIENT_TILES(2)
GRADIENT_TILES(1)
#define GRADIENT_ROW(CB) {CB, gradient_##CB##_1, gradient_##CB##_k HALF_GRADIENT_FNS(CB)}
static const struct {
    int classes;
    gradient_tile_fn one_vector, full, half_one_vector, half_full;
} gradient_tiles[] = {
    GRADIENT_ROW(GRADIENT_CLASSES),
#if GRADIENT_CLASSES > 4
    GRADIENT_ROW(4),
#endif
    GRADIENT_ROW(2), GRADIENT_ROW(1)};

/* ---- Adam ------------------------------------------------------------------------------------------------------ */

typedef struct {
    float step_size, bias2_sqrt, beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
} adam_terms;

static adam_terms adam_terms_at(int64_t step, float lr, float beta1, float beta2, float eps) {
    const double bias1 = 1.0 - pow(beta1, (double)step);
    const double bias2 = 1.0 - pow(beta2, (double)step);
    return (adam_terms){(float)(lr / bias1), (float)sqrt(bias2), beta1, beta2, 1.0f - beta1, 1.0f - beta2, eps};
}

/* Lane-wise square root (the vector extensions have no operator for it). */
static inline vfloat sqrtv(vfloat x) {
#if LANES == 16
    return (vfloat)_mm512_sqrt_ps((__m512)x);
#elif defined(__AVX__)
    return (vfloat)_mm256_sqrt_ps((__m256)x);
#else
    for (int l = 0; l < LANES; l++) x[l] = sqrtf(x[l]);
    return x;
#endif
}

/* torch._fused_adam_'s arithmetic (amsgrad and weight decay off) on `size` consecutive parameters, a multiple of
 * LANES (rows and each thread's columns are whole vectors). Written with vectors: GCC's vectorization of the same
 * scalar loop took 4.7 us for 52 x 528 parameters against 3.2-3.8 here (Zen 5). -ffast-math already turns the
 * division into a reciprocal estimate and a Newton step (vrcp14ps); the square root is exact. */
static inline void adam_range(float *restrict theta, const float *restrict grad, float *restrict m,
                              float *restrict v, int size, const adam_terms *a) {
    for (int k = 0; k < size; k += LANES) {
        const vfloat g = loadv(grad + k), m0 = loadv(m + k), v0 = loadv(v + k);
        const vfloat mk = m0 + a->one_minus_beta1 * (g - m0);
        const vfloat vk = a->beta2 * v0 + a->one_minus_beta2 * g * g;
        storev(m + k, mk);
        storev(v + k, vk);
        storev(theta + k, loadv(theta + k) - a->step_size * mk / (sqrtv(vk) / a->bias2_sqrt + a->eps));
    }
}

/* grad columns [k0, k1) (multiples of LANES) for every class, then Adam on those parameters, one pass per class row
 * (adam NULL: the gradient only, for the benchmark's matmul-only loop). Adam right after each tile, while it is in
 * L1, measured slower: 40-float runs vectorize worse than the row's k1 - k0. */
static void gradient_columns(const void *x, int half, const float *dlogits, layout in, float *grad, float *theta,
                             float *m, float *v, int rows, int width, int classes, int k0, int k1,
                             const adam_terms *adam) {
    for (int k = k0; k < k1;) {
        const int full = (k1 - k) / LANES >= GRADIENT_VECTORS;
        const void *xk = half ? (const void *)((const uint16_t *)x + k) : (const void *)((const float *)x + k);
        int c = 0;
        for (size_t t = 0; t < sizeof gradient_tiles / sizeof gradient_tiles[0]; t++) {
            const gradient_tile_fn tile = half ? (full ? gradient_tiles[t].half_full : gradient_tiles[t].half_one_vector)
                                               : (full ? gradient_tiles[t].full : gradient_tiles[t].one_vector);
            for (; c + gradient_tiles[t].classes <= classes; c += gradient_tiles[t].classes)
                tile(xk, dlogits + c * in.cls, grad + (int64_t)c * width + k, rows, width, in);
        }
        k += (full ? GRADIENT_VECTORS : 1) * LANES;
    }
    if (adam)
        for (int c = 0; c < classes; c++) {
            const int64_t at = (int64_t)c * width + k0;
            adam_range(theta + at, grad + at, m + at, v + at, k1 - k0, adam);
        }
}

/* ---- the losses' d loss / d logits ---------------------------------------------------------------------------- */

/* exp(x) for x <= 0 (softmax's max-subtracted logits) in plain arithmetic the compiler vectorizes: x = n ln2 + r,
 * exp(r) by a degree-6 polynomial on |r| <= ln2/2 (relative error ~2e-7, like expf), 2^n by the exponent bits.
 * Below -87 it returns 0 (expf gives a denormal there; the softmax sum is >= 1, so nothing changes beyond 1e-38). */
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float n = __builtin_roundf(x * 1.44269504088896341f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } scale = {.i = ((int32_t)n + 127) << 23};
    return x <= -87.0f ? 0.0f : p * scale.f;
}

/* exp_nonpositive on each lane (GCC turns the lane loop into vector code). */
static inline vfloat exp_nonpositive_v(vfloat x) {
    vfloat e;
    for (int l = 0; l < LANES; l++) e[l] = exp_nonpositive(x[l]);
    return e;
}

/* The sum of a vector's lanes in a fixed tree (lane l with l + LANES/2, then l + LANES/4, ...). */
static inline float sum_lanes(vfloat v) {
    for (int half = LANES / 2; half >= 1; half /= 2)
        for (int l = 0; l < half; l++) v[l] += v[l + half];
    return v[0];
}

/* Row-major softmax of one row of `classes` logits, max-subtracted as torch's is, a vector of classes at a time
 * (the last padded with logits far below the max, whose exp is 0). Returns log(sum exp(l - max)). */
static float softmax_row(const float *restrict logits, float *restrict out, int classes, float *max_out) {
    float max = logits[0];
    for (int j = 1; j < classes; j++) max = logits[j] > max ? logits[j] : max;
    vfloat sums = {0};
    int j = 0;
    for (; j + LANES <= classes; j += LANES) {
        const vfloat e = exp_nonpositive_v(loadv(logits + j) - max);
        storev(out + j, e);
        sums += e;
    }
    if (j < classes) {
        vfloat tail;
        for (int l = 0; l < LANES; l++) tail[l] = j + l < classes ? logits[j + l] - max : -1000.0f;
        const vfloat e = exp_nonpositive_v(tail);
        for (int l = 0; j + l < classes; l++) out[j + l] = e[l];
        sums += e;
    }
    const float sum = sum_lanes(sums);
    const float inv = 1.0f / sum;
    for (j = 0; j < classes; j++) out[j] *= inv;
    *max_out = max;
    return logf(sum);
}

/* Lane-wise max and exact division (the vector extensions' `/` becomes a reciprocal estimate under -ffast-math, which
 * would round the softmax differently from softmax_row's scalar division; the asm keeps the IEEE division). */
static inline vfloat maxv(vfloat a, vfloat b) {
#if LANES == 16
    return (vfloat)_mm512_max_ps((__m512)a, (__m512)b);
#elif defined(__AVX__)
    return (vfloat)_mm256_max_ps((__m256)a, (__m256)b);
#else
    for (int l = 0; l < LANES; l++) a[l] = b[l] > a[l] ? b[l] : a[l];
    return a;
#endif
}

static inline vfloat divv(vfloat a, vfloat b) {
#if defined(__GNUC__) && defined(__AVX__)
    vfloat q;
    __asm__("vdivps %2, %1, %0" : "=v"(q) : "v"(a), "v"(b));
    return q;
#else
    for (int l = 0; l < LANES; l++) {
        volatile float q = a[l] / b[l];  /* volatile: no vectorized reciprocal */
        a[l] = q;
    }
    return a;
#endif
}

/* The first `count` (<= LANES) floats at p; the other lanes 0 (loaded, computed on, never stored). */
static inline vfloat load_part(const float *p, int count) {
    if (count == LANES) return loadv(p);
    vfloat v = {0};
    for (int l = 0; l < count; l++) v[l] = p[l];
    return v;
}

static inline void store_part(float *p, vfloat v, int count) {
    if (count == LANES) {
        storev(p, v);
        return;
    }
    for (int l = 0; l < count; l++) p[l] = v[l];
}

/* loss_gradient's LOSS_SOFTMAX over class-major logits and dlogits (element [i][j] at j * stride + i), LANES rows at a
 * time, one row a lane. Each lane runs softmax_row's operations in softmax_row's order (its max, its exps, its sum
 * of lane j mod LANES then the same tree, one IEEE division), so every value is rounded as softmax_row rounds it:
 * 3 epochs of 20,037 rows trained to the same bits both ways, on 1 and 3 threads, when this was written, so results
 * (and the demo's table) did not move. softmax_row, one row at a time, took 3.3-3.5 us of a 64-row step: each row
 * is one long chain of dependent max, exp and sum latencies, where here LANES rows share each. */
static void softmax_rows(const float *logits, const int64_t *targets, const float *row_scale, float *dlogits,
                         double *row_loss, int64_t stride, int r0, int r1, int rows, int batch, int classes) {
    const float mean_factor = (float)batch / (float)rows;
    for (int i0 = r0; i0 < r1; i0 += LANES) {
        const int count = r1 - i0 < LANES ? r1 - i0 : LANES;
        const float *l = logits + i0;
        float *d = dlogits + i0;
        vfloat max = load_part(l, count);
        for (int j = 1; j < classes; j++) max = maxv(load_part(l + j * stride, count), max);
        vfloat sums[LANES];
        for (int j = 0; j < LANES; j++) sums[j] = (vfloat){0};
        for (int j = 0; j < classes; j++) {
            const vfloat e = exp_nonpositive_v(load_part(l + j * stride, count) - max);
            store_part(d + j * stride, e, count);
            sums[j % LANES] += e;
        }
        for (int half = LANES / 2; half >= 1; half /= 2)
            for (int j = 0; j < half; j++) sums[j] += sums[j + half];
        vfloat one;
        for (int lane = 0; lane < LANES; lane++) one[lane] = 1.0f;
        const vfloat inv = divv(one, sums[0]);
        for (int j = 0; j < classes; j++) store_part(d + j * stride, load_part(d + j * stride, count) * inv, count);
        int scaled = 0;
        vfloat factor = one;
        for (int lane = 0; lane < count; lane++) {
            const int i = i0 + lane;
            const int64_t y = targets[i];
            const float nll = max[lane] + logf(sums[0][lane]) - l[y * stride + lane];
            factor[lane] = row_scale ? row_scale[i] : mean_factor;
            if (row_loss) row_loss[i] = (double)factor[lane] * nll / batch;
            d[y * stride + lane] -= 1.0f;
            scaled |= factor[lane] != 1.0f;
        }
        if (scaled)  /* x 1.0 is exact, so the rows whose factor is 1 are unchanged */
            for (int j = 0; j < classes; j++)
                store_part(d + j * stride, load_part(d + j * stride, count) * factor, count);
    }
}

/* TF Addons' sigmoid focal loss, one row: d/dz of sum_j alpha_t (1 - q)^g (-log q), q = sigmoid(s z_j), s = +1 on
 * the target column and -1 elsewhere, alpha_t = alpha[y] there and 1 - alpha[j] elsewhere (alpha NULL: 1):
 *   dL/dz_j = -s alpha_t (1 - q)^g ((1 - q) - g q log q)        (losses.sigmoid_focal_dlogits, its reference) */
static float sigmoid_focal_row(const float *z, float *d, int64_t y, int classes, float gamma, const float *alpha,
                               float factor, float min_margin, int want_loss) {
    float loss = 0.0f;
    for (int j = 0; j < classes; j++) {
        const float s = j == y ? 1.0f : -1.0f;
        const float u = s * z[j];
        const float e = exp_nonpositive(-fabsf(u));  /* exp(-|u|), never overflows */
        const float margin = u >= 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);  /* 1 - q = sigmoid(-u) */
        const float alpha_t = alpha ? (j == y ? alpha[y] : 1.0f - alpha[j]) : 1.0f;
        float g = margin;
        if (gamma != 0.0f || want_loss) {
            const float log_q = (u >= 0 ? 0.0f : u) - log1pf(e);  /* log sigmoid(u) */
            if (gamma != 0.0f) g = (margin - gamma * (1.0f - margin) * log_q) * powf(margin, gamma);
            /* the loss: -alpha_t (1 - q)^gamma log q, (1 - q) clamped as losses.sigmoid_focal_per_sample does */
            if (want_loss)
                loss -= alpha_t * log_q * (gamma != 0.0f ? powf(margin < min_margin ? min_margin : margin, gamma) : 1.0f);
        }
        d[j] = -s * g * alpha_t * factor;
    }
    return loss;
}

/* d loss / d logits for rows [r0, r1) of a batch of `rows` rows, times batch_size (each loss's formula lives here and
 * only here), and, where row_loss is not NULL, each row's share of the batch's loss (the batch's loss is their sum).
 *   LOSS_SOFTMAX: cross-entropy of softmax(logits); row i's factor is row_scale[i] (weighted mean, class weights,
 *                 balanced softmax's offset rides in the bias) or batch/rows (plain mean) when row_scale is NULL:
 *                 dlogits_i = factor_i * (softmax_i - onehot_i); loss share factor_i / batch * nll_i.
 *   LOSS_FOCAL:   focal loss -(1-p)^g log p with p the true class's probability (times class_weights[y]):
 *                 dlogits_i = factor_i * c_i * (softmax_i - onehot_i),
 *                 c = (1-p)^g - g p (1-p)^(g-1) log p, (1-p) clamped below at min_margin; loss share its mean's.
 *   LOSS_SIGMOID_FOCAL: sigmoid_focal_row (one-vs-all, no softmax), times batch/rows; class_weights = alpha.
 * logits and dlogits are laid out as `lay`: row-major, or class-major for LOSS_SOFTMAX (softmax_rows). */
static void loss_gradient(int loss, const float *logits, layout lay, const int64_t *targets, const float *row_scale,
                          const float *class_weights, float gamma, float min_margin, float *dlogits, double *row_loss,
                          int r0, int r1, int rows, int batch, int classes) {
    if (lay.cls != 1) {  /* class-major: the softmax only (logits_layout) */
        softmax_rows(logits, targets, row_scale, dlogits, row_loss, lay.cls, r0, r1, rows, batch, classes);
        return;
    }
    const float mean_factor = (float)batch / (float)rows;
    for (int i = r0; i < r1; i++) {
        const float *l = logits + (int64_t)i * classes;
        float *d = dlogits + (int64_t)i * classes;
        const int64_t y = targets[i];
        if (loss == LOSS_SIGMOID_FOCAL) {  /* class_weights holds the per-class alpha */
            const float sample = sigmoid_focal_row(l, d, y, classes, gamma, class_weights, mean_factor, min_margin,
                                                   row_loss != 0);
            if (row_loss) row_loss[i] = (double)sample / rows;
            continue;
        }
        float max;
        const float log_sum = softmax_row(l, d, classes, &max);
        const float nll = max + log_sum - l[y];
        float factor = row_scale ? row_scale[i] : mean_factor;
        if (row_loss && loss != LOSS_FOCAL) row_loss[i] = (double)factor * nll / batch;
        if (loss == LOSS_FOCAL) {
            const float log_p = -nll;
            const float p = d[y];
            float margin = -expm1f(log_p);
            if (margin < min_margin) margin = min_margin;
            const float weight = class_weights ? class_weights[y] : 1.0f;
            if (row_loss) row_loss[i] = (double)weight * nll * powf(margin, gamma) / rows;
            factor = powf(margin, gamma - 1.0f) * (margin - gamma * p * log_p) * weight * mean_factor;
        }
        d[y] -= 1.0f;
        if (factor != 1.0f)
            for (int j = 0; j < classes; j++) d[j] *= factor;
    }
}

/* ---- the chunk's rows ------------------------------------------------------------------------------- */


/* The rows a gather asks the memory system for ahead of the one it converts: each epoch visits the rows in a fresh
 * shuffle, so every row (1 KB of fp16 at 512 features) is a DRAM miss that the hardware prefetcher cannot guess;
 * without this the gather ran at ~0.65 us a row, ~3 s of the 30 epochs. */
enum { GATHER_AHEAD = 8 };

static inline void prefetch_row(const char *row, int64_t bytes) {
#if defined(__SSE__)
    for (int64_t at = 0; at < bytes; at += 64) _mm_prefetch(row + at, _MM_HINT_T0);
#else
    (void)row;
    (void)bytes;
#endif
}

/* Whether gather_rows can read features of elem_bytes bytes (fp16 needs F16C). */
static int can_gather(int elem_bytes) {
#if defined(__F16C__)
    return elem_bytes == 2 || elem_bytes == 4;
#else
    return elem_bytes == 4;
#endif
}

static int indices_in_range(const int64_t *index, int n, int64_t rows) {
    for (int i = 0; i < n; i++)
        if (index[i] < 0 || index[i] >= rows) return 0;
    return 1;
}

/* rows[i] = features[index[i]] widened to fp32, into out (row stride `width`), for fp16 (elem_bytes 2) or fp32
 * (4) features of `dim` columns; indices already checked. Returns 0, or -1 when can_gather(elem_bytes) is false. */
static int gather_rows(const void *features, int elem_bytes, int64_t dim, const int64_t *index, int n, float *out,
                       int width) {
    const int64_t row_bytes = dim * elem_bytes;
    for (int i = 0; i < n && i < GATHER_AHEAD; i++) prefetch_row((const char *)features + index[i] * row_bytes, row_bytes);
    if (elem_bytes == 4) {
        for (int i = 0; i < n; i++) {
            if (i + GATHER_AHEAD < n)
                prefetch_row((const char *)features + index[i + GATHER_AHEAD] * row_bytes, row_bytes);
            const float *src = (const float *)features + index[i] * dim;
            float *dst = out + (int64_t)i * width;
            for (int64_t k = 0; k < dim; k++) dst[k] = src[k];
        }
        return 0;
    }
#if defined(__F16C__)
    if (elem_bytes == 2) {
        for (int i = 0; i < n; i++) {
            if (i + GATHER_AHEAD < n)
                prefetch_row((const char *)features + index[i + GATHER_AHEAD] * row_bytes, row_bytes);
            const uint16_t *src = (const uint16_t *)features + index[i] * dim;
            float *dst = out + (int64_t)i * width;
            int64_t k = 0;
#if defined(__AVX512F__)
            for (; k + 16 <= dim; k += 16)
                _mm512_storeu_ps(dst + k, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + k))));
#endif
            for (; k + 8 <= dim; k += 8)
                _mm256_storeu_ps(dst + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + k))));
            for (; k < dim; k++) dst[k] = _cvtsh_ss(src[k]);
        }
        return 0;
    }
#endif
    return -1;
}

#if HAS_FP16_TILES
/* rows[i] = features[index[i]] as they are (fp16, dim columns), into out (row stride `width`): the fp16 steps'
 * gather, prefetched ahead as gather_rows is; indices already checked. */
static void copy_half_rows(const uint16_t *features, int64_t dim, const int64_t *index, int n, uint16_t *out,
                           int width) {
    for (int i = 0; i < n && i < GATHER_AHEAD; i++) prefetch_row((const char *)(features + index[i] * dim), dim * 2);
    for (int i = 0; i < n; i++) {
        if (i + GATHER_AHEAD < n) prefetch_row((const char *)(features + index[i + GATHER_AHEAD] * dim), dim * 2);
        const uint16_t *src = features + index[i] * dim;
        uint16_t *dst = out + (int64_t)i * width;
        int64_t k = 0;
        for (; k + 32 <= dim; k += 32) memcpy(dst + k, src + k, 64);  /* fixed size: one vector move, no call */
        for (; k < dim; k++) dst[k] = src[k];
    }
}

/* The fp16 steps' batch buffer (batch x width): its columns from dim on (the bias's 1, the padding) are inputs'
 * first `batch` rows' converted once. NULL where they are not exactly fp16 values or the memory is not there: the
 * steps then gather fp32 rows into inputs as before. */
static uint16_t *half_batch(const float *inputs, int batch, int64_t dim, int width) {
    uint16_t *rows = malloc(sizeof *rows * (size_t)batch * (size_t)width);
    for (int i = 0; rows && i < batch; i++)
        for (int64_t k = dim; k < width; k++) {
            const float value = inputs[(int64_t)i * width + k];
            rows[(int64_t)i * width + k] = _cvtss_sh(value, 0);
            if (_cvtsh_ss(rows[(int64_t)i * width + k]) != value) {
                free(rows);
                return 0;
            }
        }
    return rows;
}
#else
static uint16_t *half_batch(const float *inputs, int batch, int64_t dim, int width) {
    (void)inputs, (void)batch, (void)dim, (void)width;
    return 0;
}
#endif

/* gather_rows for the torch loop's chunks: the gather without torch's per-row index_select dispatch and without a
 * staging copy. Returns 0; -2 for an index outside 0..rows-1 (nothing read); -1 when this build cannot convert
 * fp16 (no F16C): the caller gathers with torch. */
int headloop_gather(const void *features, int elem_bytes, int64_t rows, int64_t dim, const int64_t *index, int n,
                    float *out, int width) {
    if (!indices_in_range(index, n, rows)) return -2;
    return gather_rows(features, elem_bytes, dim, index, n, out, width);
}

/* ---- threads ---------------------------------------------------------------------------------------------------- */

/* A sense-reversing barrier. Waiters spin (a step is ~60 us; a futex wake costs several), then yield the core so
 * that an oversubscribed machine (tests beside a training run) degrades instead of burning a core per waiter. */
typedef struct {
    atomic_int arrived;
    atomic_int sense;
    int threads;
} barrier;

static void barrier_wait(barrier *b, int *local_sense) {
    const int sense = !*local_sense;
    *local_sense = sense;
    if (atomic_fetch_add_explicit(&b->arrived, 1, memory_order_acq_rel) == b->threads - 1) {
        atomic_store_explicit(&b->arrived, 0, memory_order_relaxed);
        atomic_store_explicit(&b->sense, sense, memory_order_release);
        return;
    }
    for (int spins = 0; atomic_load_explicit(&b->sense, memory_order_acquire) != sense; spins++) {
        if (spins < 20000)
            SPIN_PAUSE();
        else
            sched_yield();
    }
}

/* What every thread of one headloop_steps call shares. */
typedef struct {
    const float *inputs, *row_scale, *class_weights;  /* inputs: written only by the gather */
    const int64_t *targets;
    float *logits, *dlogits, *theta, *grad, *m, *v;
    double *row_loss;
    const void *features;  /* NULL: inputs already hold the chunk's rows; else gather them from features[index] */
    const int64_t *index;
    int64_t dim;
    int elem_bytes;
    uint16_t *half_rows;  /* fp16 features: each step's rows, as they are (half_batch); else NULL */
    int n, batch, width, classes, loss, threads, matmuls_only, forward_only;
    double matmul_seconds;  /* headloop_matmuls_timed: thread 0's clock over the matmuls of every step */
    float gamma, min_margin, lr, beta1, beta2, eps;
    int64_t step0;
    barrier sync;
    atomic_int go;
} chunk_work;

typedef struct {
    chunk_work *work;
    int index;
} thread_slot;

/* [begin, end) of `count` items for thread `index` of `threads`, in units of `unit` items (the last may be short).
 * The matmuls share rows in units of a forward tile and columns in units of a gradient tile, so that which tile
 * computes an element depends on its place in the batch, not on the thread count: the compiler's code for the
 * edge tiles rounds differently from the full tiles', and results must not depend on the thread count. */
static void share(int count, int unit, int index, int threads, int *begin, int *end) {
    const int units = (count + unit - 1) / unit;
    const int b = (int)((int64_t)units * index / threads) * unit, e = (int)((int64_t)units * (index + 1) / threads) * unit;
    *begin = b < count ? b : count;
    *end = e < count ? e : count;
}

/* The steps' logits and dlogits: class-major for the softmax (softmax_rows runs LANES rows at a time over it; the
 * forward tile's scalar stores and the gradient tile's broadcast loads cost the same either way), row-major for the
 * per-row losses. The matmul-only loop lays them out as the softmax does, the loss its benchmark trains. */
static layout logits_layout(int loss, int batch, int classes) {
    return loss == LOSS_SOFTMAX ? (layout){1, batch} : (layout){classes, 1};
}

/* One thread's part of every step of the chunk: its rows of the forward pass and the loss, a barrier, its columns
 * of the gradient and Adam, a barrier (the next step's forward reads every column of theta). */
static void run_share(chunk_work *w, int index) {
    FLUSH_DENORMALS_BEGIN
    int local_sense = 0;
    if (w->forward_only) {  /* headloop_logits: rows are independent, no barrier */
        int r0, r1;
        share(w->n, FORWARD_ROWS, index, w->threads, &r0, &r1);
        forward_rows(w->inputs, 0, w->theta, w->logits, (layout){w->classes, 1}, r0, r1, w->width, w->classes);
        FLUSH_DENORMALS_END
        return;
    }
    int k0, k1;
    share(w->width, LANES, index, w->threads, &k0, &k1);
    int64_t step = w->step0;
    const layout lay = logits_layout(w->loss, w->batch, w->classes);
    for (int start = 0; start < w->n; start += w->batch) {
        const int rows = w->n - start < w->batch ? w->n - start : w->batch;
        /* Gathered rows go to the same first `batch` rows of inputs (or of half_rows) every step: those 135 KB (68 KB)
         * stay in L2, where a fresh region per step would make each of its writes a miss first. The barrier after the
         * gradient frees them for the next step's gather. */
        float *inputs = (float *)w->inputs + (w->features ? 0 : (int64_t)start * w->width);
        const int half = w->half_rows != 0;
        const void *x = half ? (const void *)w->half_rows : (const void *)inputs;
        /* Every step's logits and dlogits reuse the same first `batch` rows too: a fresh 13 KB of each per step cycled
         * 850 KB a chunk through L2 beside theta, Adam's moments and the inputs (0-1.1 us a step, bench/README.md). */
        float *l = w->logits;
        float *d = w->dlogits;
        int r0, r1;
        share(rows, FORWARD_ROWS, index, w->threads, &r0, &r1);
        /* Each thread gathers the rows of its forward share just before using them, so they are read from its own
         * L2; the barrier publishes them for the gradient, which reads every row. */
#if HAS_FP16_TILES
        if (half)
            copy_half_rows(w->features, w->dim, w->index + start + r0, r1 - r0, w->half_rows + (int64_t)r0 * w->width,
                           w->width);
        else
#endif
        if (w->features)
            gather_rows(w->features, w->elem_bytes, w->dim, w->index + start + r0, r1 - r0,
                        inputs + (int64_t)r0 * w->width, w->width);
        struct timespec began;
        if (w->matmuls_only && w->features) {  /* headloop_matmuls_timed: the clock starts after every gather */
            if (w->threads > 1) barrier_wait(&w->sync, &local_sense);
            if (index == 0) clock_gettime(CLOCK_MONOTONIC, &began);
        }
        forward_rows(x, half, w->theta, l, lay, r0, r1, w->width, w->classes);
        if (!w->matmuls_only)
            loss_gradient(w->loss, l, lay, w->targets + start, w->row_scale ? w->row_scale + start : 0,
                          w->class_weights, w->gamma, w->min_margin, d, w->row_loss ? w->row_loss + start : 0, r0, r1,
                          rows, w->batch, w->classes);
        if (w->threads > 1) barrier_wait(&w->sync, &local_sense);
        step += 1;
        const adam_terms adam = adam_terms_at(step, w->lr, w->beta1, w->beta2, w->eps);
        gradient_columns(x, half, d, lay, w->grad, w->theta, w->m, w->v, rows, w->width, w->classes, k0, k1,
                         w->matmuls_only ? 0 : &adam);
        if (w->threads > 1) barrier_wait(&w->sync, &local_sense);
        if (w->matmuls_only && w->features && index == 0) {
            struct timespec ended;
            clock_gettime(CLOCK_MONOTONIC, &ended);
            w->matmul_seconds += (double)(ended.tv_sec - began.tv_sec) + 1e-9 * (double)(ended.tv_nsec - began.tv_nsec);
        }
    }
    FLUSH_DENORMALS_END
}

static void *thread_main(void *arg) {
    const thread_slot *slot = arg;
    chunk_work *w = slot->work;
    for (int spins = 0; !atomic_load_explicit(&w->go, memory_order_acquire); spins++)
        if (spins >= 20000) sched_yield();
    run_share(w, slot->index);
    return 0;
}

/* Runs run_share on up to w->threads threads, this one included. The threads wait at a gate until the count of
 * those that started is known, so a thread that cannot be started shrinks the count instead of leaving the others
 * at a barrier for ever. Returns the number of threads used. */
static int run_threads(chunk_work *w) {
    pthread_t ids[MAX_THREADS];
    thread_slot slots[MAX_THREADS];
    int wanted = w->threads < 1 ? 1 : w->threads > MAX_THREADS ? MAX_THREADS : w->threads;
    if (wanted > w->width / LANES) wanted = w->width / LANES;  /* each thread's share is whole column vectors */
    if (wanted < 1) wanted = 1;
    atomic_store(&w->go, 0);
    int started = 1;
    for (; started < wanted; started++) {
        slots[started] = (thread_slot){w, started};
        if (pthread_create(&ids[started], 0, thread_main, &slots[started]) != 0) break;
    }
    w->threads = started;
    w->sync.threads = started;
    atomic_store(&w->sync.arrived, 0);
    atomic_store(&w->sync.sense, 0);
    atomic_store_explicit(&w->go, 1, memory_order_release);
    run_share(w, 0);
    for (int i = 1; i < started; i++) pthread_join(ids[i], 0);
    return started;
}

/* Train on the chunk's n rows in batches of `batch` on `threads` threads; steps are numbered from step0 + 1.
 * features (feature_rows x dim, fp16 or fp32 by elem_bytes) and index (n rows): each batch's rows are gathered into
 * the first dim columns of inputs' first `batch` rows, step after step (features NULL: inputs already hold the
 * chunk's n rows). logits and dlogits (batch x classes, or larger) are scratch: each step's go to their first rows
 * (laid out as logits_layout says). grad (classes x width) holds the last step's gradient. row_loss (n doubles, or
 * NULL) is scratch for each row's share of its batch's loss: *loss_out gets the sum over the chunk's batches of each
 * batch's loss, summed in row order (the same value for any thread count). Returns the number of steps taken;
 * -1 when width is not a multiple of LANES (16 with AVX-512, else 8) or the features' type cannot be gathered, -2
 * for an index outside the features' rows (nothing trained). */
int64_t headloop_steps(const void *features, int elem_bytes, int64_t feature_rows, int64_t dim, const int64_t *index,
                       float *inputs, const int64_t *targets, const float *row_scale, float *logits, float *dlogits,
                       float *theta, float *grad, float *m, float *v, int n, int batch, int width, int classes, int loss,
                       float gamma, float min_margin, const float *class_weights, float lr, float beta1, float beta2,
                       float eps, int64_t step0, int threads, double *row_loss, double *loss_out) {
    if (width % LANES || (features && (!can_gather(elem_bytes) || dim > width))) return -1;
    if (features && !indices_in_range(index, n, feature_rows)) return -2;
    chunk_work w = {.inputs = inputs, .row_scale = row_scale, .class_weights = class_weights, .targets = targets,
                    .logits = logits, .dlogits = dlogits, .theta = theta, .grad = grad, .m = m, .v = v,
                    .row_loss = row_loss, .features = features, .index = index, .dim = dim, .elem_bytes = elem_bytes,
                    .n = n, .batch = batch, .width = width, .classes = classes, .loss = loss, .threads = threads,
                    .gamma = gamma, .min_margin = min_margin, .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps,
                    .step0 = step0};
    /* fp16 features: the steps read their rows as they are (half_batch) */
    if (features && elem_bytes == 2) w.half_rows = half_batch(inputs, n < batch ? n : batch, dim, width);
    run_threads(&w);
    free(w.half_rows);
    if (row_loss && loss_out) {
        double total = 0.0;
        for (int i = 0; i < n; i++) total += row_loss[i];
        *loss_out = total;
    }
    return (n + batch - 1) / batch;
}

/* logits (n x classes) = inputs (n x width) . theta^T on `threads` threads: validation's logits each epoch, with the
 * training steps' own matmul (the bias rides in the inputs' column of ones). Returns 0, -1 when width is not a
 * multiple of LANES. */
int headloop_logits(const float *inputs, const float *theta, float *logits, int n, int width, int classes,
                    int threads) {
    if (width % LANES) return -1;
    chunk_work w = {.inputs = inputs, .theta = (float *)theta, .logits = logits, .n = n, .width = width,
                    .classes = classes, .threads = threads, .forward_only = 1};
    run_threads(&w);
    return 0;
}

/* The benchmark's matmul-only loop as headloop_steps runs its matmuls: each batch gathered from features[index] into
 * the first rows of inputs as the steps gather it, then only the two matmuls, timed from after the gather to after
 * the gradient (bench/phase2_head.py: what the steps' matmuls cost with their rows where the steps have them).
 * Returns those seconds summed over the chunk's steps; -1.0 for a width or features it cannot take, -2.0 for an index
 * outside the features' rows. dlogits is read as it is; theta is untouched. */
double headloop_matmuls_timed(const void *features, int elem_bytes, int64_t feature_rows, int64_t dim,
                              const int64_t *index, float *inputs, float *logits, float *dlogits, const float *theta,
                              float *grad, int n, int batch, int width, int classes, int threads) {
    if (width % LANES || !can_gather(elem_bytes) || dim > width) return -1.0;
    if (!indices_in_range(index, n, feature_rows)) return -2.0;
    chunk_work w = {.features = features, .elem_bytes = elem_bytes, .dim = dim, .index = index, .inputs = inputs,
                    .logits = logits, .dlogits = dlogits, .theta = (float *)theta, .grad = grad, .n = n,
                    .batch = batch, .width = width, .classes = classes, .threads = threads, .matmuls_only = 1};
    if (elem_bytes == 2) w.half_rows = half_batch(inputs, n < batch ? n : batch, dim, width);
    run_threads(&w);
    free(w.half_rows);
    return w.matmul_seconds;
}


