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
 * Where a core is left over, a low-priority helper reads each next step's rows while this step's matmuls run (the
 * row toucher), so that the step's gather finds them in cache; it only reads, so it cannot change a bit either.
 * One translation unit in three files: the matmul tiles (headloop_tiles.h), the losses (headloop_losses.h) and the
 * rest here. Built by `make setup` (Makefile: headloop); head_training.py falls back to its torch loop without it.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
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

#define HEADLOOP_ABI 9
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

#include "headloop_tiles.h"

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
            const gradient_tile_fn tile = half ? (full ? gradient_tiles[t].half_full
                                                       : gradient_tiles[t].half_one_vector)
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

#include "headloop_losses.h"

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

/* The gathers' look-ahead: rows 0..GATHER_AHEAD-1 before the first copy, then row i + GATHER_AHEAD before row i's. */
static inline void prefetch_first_rows(const char *features, int64_t row_bytes, const int64_t *index, int n) {
    for (int i = 0; i < n && i < GATHER_AHEAD; i++) prefetch_row(features + index[i] * row_bytes, row_bytes);
}

static inline void prefetch_row_ahead(const char *features, int64_t row_bytes, const int64_t *index, int i, int n) {
    if (i + GATHER_AHEAD < n) prefetch_row(features + index[i + GATHER_AHEAD] * row_bytes, row_bytes);
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
    prefetch_first_rows(features, row_bytes, index, n);
    if (elem_bytes == 4) {
        for (int i = 0; i < n; i++) {
            prefetch_row_ahead(features, row_bytes, index, i, n);
            const float *src = (const float *)features + index[i] * dim;
            float *dst = out + (int64_t)i * width;
            for (int64_t k = 0; k < dim; k++) dst[k] = src[k];
        }
        return 0;
    }
#if defined(__F16C__)
    if (elem_bytes == 2) {
        for (int i = 0; i < n; i++) {
            prefetch_row_ahead(features, row_bytes, index, i, n);
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
    prefetch_first_rows((const char *)features, dim * 2, index, n);
    for (int i = 0; i < n; i++) {
        prefetch_row_ahead((const char *)features, dim * 2, index, i, n);
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

/* ---- the row toucher ------------------------------------------------------------------------------------------- */

/* Where a core is left over (one step thread on the 2-core VM), a helper thread reads the next step's rows while this
 * step's matmuls run, so that the step's own gather copies them from the helper's cache instead of waiting on DRAM
 * for 64 random 1 KB rows (the gather's prefetch hides only part of that: 9-14 % of a step's cycles). It only reads
 * and never writes anything the steps read, so the bits cannot depend on it: where it falls behind or is not
 * scheduled, the gather simply misses as it did without it. It runs at the lowest priority (nice 19), so that
 * validation on the same core, or another process, takes the core first.
 * The training thread never waits for it, except at the end of the call while it is in the middle of reading
 * one step's rows (the caller's index and features may be freed once the call returns): its state lives on the
 * heap, shared by the two and freed by the last to let go of it. */
typedef struct row_toucher {
    const char *features;
    const int64_t *index;
    int64_t row_bytes;
    int n, batch;
    atomic_int step;   /* the step the training thread is on */
    atomic_int stop;   /* set by the training thread when its steps are done */
    atomic_int busy;   /* set while the toucher reads the caller's index and features */
    atomic_int holders;
} row_toucher;

/* Steps ahead of the training thread: the next one. More gains nothing measurable (its gather is ~9 % of a step),
 * and each step ahead is 64 more rows (64-128 KB) sitting in L2 beside the step's own working set. */
enum { TOUCH_AHEAD = 1 };
/* While it is ahead, the toucher sleeps this long between looks at the step counter rather than spinning: a step is
 * ~100 us and reading its rows takes a few, so a 10 us nap loses nothing measurable (matmul share 0.75-0.84 over four
 * runs against 0.73-0.81 spinning, Zen 4 host, 2026-12-02) and spends ~20 % less CPU time than a spinning helper (3.8-4.3 s per
 * 10-epoch head against 4.7-5.2 s; 2.9 s with no toucher). The timer slack is cut to 1 us for this thread, or the
 * kernel would round each nap up to its default 50 us. */
enum { TOUCHER_NAP_NS = 10000 };

/* Steps whose rows a toucher has read, over the process's life: for the tests, which check that it runs. */
static atomic_llong touched_steps;
long long headloop_touched_steps(void) { return atomic_load_explicit(&touched_steps, memory_order_relaxed); }
/* For the tests only: the toucher sleeps this long after reading each step's rows, before it lets go of them, as a
 * toucher the scheduler leaves waiting would: the end-of-call handshake must then wait for it. 0: never. */
static atomic_int toucher_test_pause_us;
void headloop_set_toucher_test_pause(int microseconds) { atomic_store(&toucher_test_pause_us, microseconds); }

static void toucher_release(row_toucher *t) {
    if (atomic_fetch_sub(&t->holders, 1) == 1) free(t);
}

static void *toucher_main(void *arg) {
    row_toucher *t = arg;
#if defined(__linux__)
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);  /* this thread only; raising nice is always allowed */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
#endif
    const int steps = (t->n + t->batch - 1) / t->batch;
    uint64_t sink = 0;
    for (int next = 1; next < steps;) {
        /* busy before stop is read (both seq_cst): the training thread either sees busy and waits, or this thread
         * sees stop and reads nothing more */
        atomic_store(&t->busy, 1);
        if (atomic_load(&t->stop)) break;
        const int at = atomic_load_explicit(&t->step, memory_order_relaxed);
        if (next <= at) next = at + 1;  /* fell behind: those rows are read already */
        if (next > at + TOUCH_AHEAD || next >= steps) {
            atomic_store_explicit(&t->busy, 0, memory_order_release);
            nanosleep(&(struct timespec){0, TOUCHER_NAP_NS}, 0);
            continue;
        }
        const int start = next * t->batch, rows = t->n - start < t->batch ? t->n - start : t->batch;
        for (int i = 0; i < rows; i++) {  /* one load per cache line: a load cannot be dropped, a prefetch can */
            const char *row = t->features + t->index[start + i] * t->row_bytes;
            for (int64_t at_byte = 0; at_byte < t->row_bytes; at_byte += 64) sink += *(const volatile uint8_t *)(row + at_byte);
        }
        const int pause_us = atomic_load_explicit(&toucher_test_pause_us, memory_order_relaxed);
        if (pause_us) {
            nanosleep(&(struct timespec){0, pause_us * 1000L}, 0);
            sink += *(const volatile uint8_t *)(t->features + t->index[start] * t->row_bytes);  /* read again */
        }
        atomic_store_explicit(&t->busy, 0, memory_order_release);
        atomic_fetch_add_explicit(&touched_steps, 1, memory_order_relaxed);
        next++;
    }
    atomic_store_explicit(&t->busy, 0, memory_order_release);
    (void)sink;
    toucher_release(t);
    return 0;
}

/* Starts a toucher over the call's rows; NULL where there is nothing to gain (one step) or no thread to be had. */
static row_toucher *toucher_start(const void *features, int64_t row_bytes, const int64_t *index, int n, int batch) {
    if (!features || n <= batch) return 0;
    row_toucher *t = malloc(sizeof *t);
    if (!t) return 0;
    *t = (row_toucher){.features = features, .index = index, .row_bytes = row_bytes, .n = n, .batch = batch};
    atomic_store(&t->holders, 2);
    pthread_attr_t attr;
    pthread_t id;
    int started = pthread_attr_init(&attr) == 0;
    started = started && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
              pthread_create(&id, &attr, toucher_main, t) == 0;
    pthread_attr_destroy(&attr);
    if (!started) {
        free(t);
        return 0;
    }
    return t;
}

/* The steps are done: once this returns the toucher reads nothing of the caller's. */
static void toucher_stop(row_toucher *t) {
    if (!t) return;
    atomic_store(&t->stop, 1);
    for (int spins = 0; atomic_load(&t->busy); spins++) {
        if (spins < 20000)
            SPIN_PAUSE();
        else
            sched_yield();
    }
    toucher_release(t);
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
    struct row_toucher *toucher;  /* thread 0 tells it which step it is on; NULL: none */
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
        const int half = w->half_rows != 0;  /* fp16 rows: in half_rows, inputs unused */
        forward_rows(half ? (const void *)w->half_rows : (const void *)w->inputs, half, w->theta, w->logits,
                     (layout){w->classes, 1}, r0, r1, w->width, w->classes);
        FLUSH_DENORMALS_END
        return;
    }
    int k0, k1;
    share(w->width, LANES, index, w->threads, &k0, &k1);
    int64_t step = w->step0;
    const layout lay = logits_layout(w->loss, w->batch, w->classes);
    for (int start = 0; start < w->n; start += w->batch) {
        const int rows = w->n - start < w->batch ? w->n - start : w->batch;
        if (index == 0 && w->toucher) atomic_store_explicit(&w->toucher->step, start / w->batch, memory_order_relaxed);
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
 * the first dim columns of inputs' first `batch` rows, step after step, or, for fp16 features whose inputs columns
 * from dim on hold exact fp16 values, copied as fp16 into a batch buffer of the call's own, inputs only read for
 * those columns (half_batch; features NULL: inputs already hold the chunk's n rows). logits and dlogits (batch x classes, or larger) are scratch: each step's go to their first rows
 * (laid out as logits_layout says). grad (classes x width) holds the last step's gradient. row_loss (n doubles, or
 * NULL) is scratch for each row's share of its batch's loss: *loss_out gets the sum over the chunk's batches of each
 * batch's loss, summed in row order (the same value for any thread count). Returns the number of steps taken;
 * -1 when width is not a multiple of LANES (16 with AVX-512, else 8) or the features' type cannot be gathered, -2
 * for an index outside the features' rows (nothing trained). touch_rows: a helper thread reads each next step's rows
 * ahead of its gather (the row toucher above; for a core the step threads leave free). */
int64_t headloop_steps(const void *features, int elem_bytes, int64_t feature_rows, int64_t dim, const int64_t *index,
                       float *inputs, const int64_t *targets, const float *row_scale, float *logits, float *dlogits,
                       float *theta, float *grad, float *m, float *v, int n, int batch, int width, int classes, int loss,
                       float gamma, float min_margin, const float *class_weights, float lr, float beta1, float beta2,
                       float eps, int64_t step0, int threads, int touch_rows, double *row_loss, double *loss_out) {
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
    if (touch_rows) w.toucher = toucher_start(features, dim * elem_bytes, index, n, batch);
    run_threads(&w);
    toucher_stop(w.toucher);
    free(w.half_rows);
    if (row_loss && loss_out) {
        double total = 0.0;
        for (int i = 0; i < n; i++) total += row_loss[i];
        *loss_out = total;
    }
    return (n + batch - 1) / batch;
}

/* logits (n x classes) = inputs (n x width, fp32 or, elem_bytes 2, fp16) . theta^T on `threads` threads: validation's
 * logits each epoch, with the training steps' own matmul (the bias rides in the inputs' column of ones). fp16 rows
 * go through the fp16 steps' tiles, which round every logit as the fp32 tiles do: the same logits from half the
 * bytes (validation reads its rows once an epoch, from memory, while a training thread runs beside it). Returns 0,
 * -1 when width is not a multiple of LANES or this build has no fp16 tiles for fp16 rows. */
int headloop_logits(const void *inputs, int elem_bytes, const float *theta, float *logits, int n, int width,
                    int classes, int threads) {
    if (width % LANES || !(elem_bytes == 4 || (elem_bytes == 2 && HAS_FP16_TILES))) return -1;
    chunk_work w = {.inputs = elem_bytes == 4 ? inputs : 0, .half_rows = elem_bytes == 2 ? (uint16_t *)inputs : 0,
                    .theta = (float *)theta, .logits = logits, .n = n, .width = width, .classes = classes,
                    .threads = threads, .forward_only = 1};
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


