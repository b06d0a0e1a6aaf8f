/* headloop.c's matmuls: vectors, the register tiles of the forward pass and the gradient, over fp32 or fp16 rows.
 * Included once, by headloop.c (one translation unit, so that every tile inlines where it is used). */

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

/* forward_rows over rows of T, with the tiles TILE (RB x CB), TILE_row (1 x CB), TILE_class (RB x 1) and TILE_one. */
#define FORWARD_ROWS_OF(NAME, T, TILE, RB, CB)                                                                     \
    static void NAME(const T *x, const float *theta, float *logits, layout out, int r0, int r1, int width,        \
                     int classes) {                                                                                \
        int r = r0;                                                                                                \
        for (; r + RB <= r1; r += RB) {                                                                            \
            const T *xr = x + (int64_t)r * width;                                                                  \
            float *at = logits + r * out.row;                                                                      \
            int c = 0;                                                                                             \
            for (; c + CB <= classes; c += CB) TILE(xr, theta + (int64_t)c * width, at + c * out.cls, width, out); \
            for (; c < classes; c++) TILE##_class(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);   \
        }                                                                                                          \
        for (; r < r1; r++) {                                                                                      \
            const T *xr = x + (int64_t)r * width;                                                                  \
            float *at = logits + r * out.row;                                                                      \
            int c = 0;                                                                                             \
            for (; c + CB <= classes; c += CB)                                                                     \
                TILE##_row(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);                          \
            for (; c < classes; c++) TILE##_one(xr, theta + (int64_t)c * width, at + c * out.cls, width, out);     \
        }                                                                                                          \
    }
FORWARD_ROWS_OF(forward_float_rows, float, forward_tile, FORWARD_ROWS, FORWARD_CLASSES)
#if HAS_FP16_TILES
FORWARD_TILE(half_tile, HALF_FORWARD_ROWS, HALF_FORWARD_CLASSES, uint16_t, widen)
FORWARD_TILE(half_tile_row, 1, HALF_FORWARD_CLASSES, uint16_t, widen)
FORWARD_TILE(half_tile_class, HALF_FORWARD_ROWS, 1, uint16_t, widen)
FORWARD_TILE(half_tile_one, 1, 1, uint16_t, widen)

FORWARD_ROWS_OF(forward_half_rows, uint16_t, half_tile, HALF_FORWARD_ROWS, HALF_FORWARD_CLASSES)
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
    forward_float_rows(rows, theta, logits, out, r0, r1, width, classes);
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
