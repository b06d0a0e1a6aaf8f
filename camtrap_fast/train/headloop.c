/* The phase-2 head's training steps in C: what train.head_training._FusedHead.train_epoch does per batch,
 * without Python or torch dispatch between the steps (72,780 steps at season-9 scale; each step's own
 * arithmetic is ~55 us on 2 cores, and torch's per-op dispatch cost ~3 us per op, ~10 ops per step).
 *
 * Per batch of `batch` rows of the chunk:
 *   logits = inputs . theta^T                  (sgemm: the caller passes the BLAS sgemm_ torch itself uses)
 *   dlogits = d loss / d logits, x batch_size  (loss_gradient: the one place that knows each loss)
 *   grad = dlogits^T . inputs                  (sgemm; the bias is a column of ones in inputs)
 *   Adam on theta                              (adam_step: torch's fused Adam arithmetic, eps pre-scaled)
 * The gradient is kept batch_size times the loss's and Adam's eps scaled to match (see head_training.py).
 * Built by `make setup` (Makefile: headloop); head_training.py falls back to its torch loop without it.
 */
#include <math.h>
#include <stdint.h>
#if defined(__SSE__)
#include <xmmintrin.h>
/* Denormals flushed to zero inside the loop only (the caller's MXCSR is restored): Adam's second moment of a rare
 * class's weights decays into the denormal range, where every operation costs ~100x; values below 1e-38 change
 * nothing at the 1e-5 the tests hold the loop to. torch.set_flush_denormal does the same process-wide. */
#define FLUSH_DENORMALS_BEGIN const unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040);
#define FLUSH_DENORMALS_END _mm_setcsr(saved_csr);
#else
#define FLUSH_DENORMALS_BEGIN
#define FLUSH_DENORMALS_END
#endif

typedef void (*sgemm_fn)(const char *transa, const char *transb, const int *m, const int *n, const int *k,
                         const float *alpha, const float *a, const int *lda, const float *b, const int *ldb,
                         const float *beta, float *c, const int *ldc);

enum { LOSS_SOFTMAX = 0, LOSS_FOCAL = 1, LOSS_SIGMOID_FOCAL = 2 };

#define HEADLOOP_ABI 4
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

/* Row-major softmax of one row of `classes` logits, max-subtracted as torch's is. Returns log(sum exp(l - max)). */
static float softmax_row(const float *restrict logits, float *restrict out, int classes, float *max_out) {
    float max = logits[0];
    for (int j = 1; j < classes; j++) max = logits[j] > max ? logits[j] : max;
    float sum = 0.0f;
    for (int j = 0; j < classes; j++) {
        out[j] = exp_nonpositive(logits[j] - max);
        sum += out[j];
    }
    const float inv = 1.0f / sum;
    for (int j = 0; j < classes; j++) out[j] *= inv;
    *max_out = max;
    return logf(sum);
}

/* d loss / d logits for one batch, times batch_size (each loss's formula lives here and only here).
 *   LOSS_SOFTMAX: cross-entropy of softmax(logits); row i's factor is row_scale[i] (weighted mean, class weights,
 *                 balanced softmax's offset rides in the bias) or batch/rows (plain mean) when row_scale is NULL:
 *                 dlogits_i = factor_i * (softmax_i - onehot_i).
 *   LOSS_FOCAL:   focal loss -(1-p)^g log p with p the true class's probability (times class_weights[y]):
 *                 dlogits_i = factor_i * c_i * (softmax_i - onehot_i),
 *                 c = (1-p)^g - g p (1-p)^(g-1) log p, (1-p) clamped below at min_margin.
 *   LOSS_SIGMOID_FOCAL: sigmoid_focal_row (one-vs-all, no softmax), times batch/rows; class_weights = alpha. */
/* TF Addons' sigmoid focal loss, one row: d/dz of sum_j alpha_t (1 - q)^g (-log q), q = sigmoid(s z_j), s = +1 on
 * the target column and -1 elsewhere, alpha_t = alpha[y] there and 1 - alpha[j] elsewhere (alpha NULL: 1):
 *   dL/dz_j = -s alpha_t (1 - q)^g ((1 - q) - g q log q)        (losses.sigmoid_focal_dlogits, its reference) */
static void sigmoid_focal_row(const float *z, float *d, int64_t y, int classes, float gamma, const float *alpha,
                              float factor) {
    for (int j = 0; j < classes; j++) {
        const float s = j == y ? 1.0f : -1.0f;
        const float u = s * z[j];
        const float e = exp_nonpositive(-fabsf(u));  /* exp(-|u|), never overflows */
        const float margin = u >= 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);  /* 1 - q = sigmoid(-u) */
        float g = margin;
        if (gamma != 0.0f) {
            const float log_q = (u >= 0 ? 0.0f : u) - log1pf(e);  /* log sigmoid(u) */
            g = (margin - gamma * (1.0f - margin) * log_q) * powf(margin, gamma);
        }
        if (alpha) g *= j == y ? alpha[y] : 1.0f - alpha[j];
        d[j] = -s * g * factor;
    }
}

static void loss_gradient(int loss, const float *logits, const int64_t *targets, const float *row_scale,
                          const float *class_weights, float gamma, float min_margin, float *dlogits, int rows,
                          int batch, int classes) {
    const float mean_factor = (float)batch / (float)rows;
    for (int i = 0; i < rows; i++) {
        const float *l = logits + (int64_t)i * classes;
        float *d = dlogits + (int64_t)i * classes;
        const int64_t y = targets[i];
        if (loss == LOSS_SIGMOID_FOCAL) {  /* class_weights holds the per-class alpha */
            sigmoid_focal_row(l, d, y, classes, gamma, class_weights, mean_factor);
            continue;
        }
        float max;
        const float log_sum = softmax_row(l, d, classes, &max);
        float factor = row_scale ? row_scale[i] : mean_factor;
        if (loss == LOSS_FOCAL) {
            const float log_p = l[y] - max - log_sum;
            const float p = d[y];
            float margin = -expm1f(log_p);
            if (margin < min_margin) margin = min_margin;
            float c = powf(margin, gamma - 1.0f) * (margin - gamma * p * log_p);
            if (class_weights) c *= class_weights[y];
            factor = c * mean_factor;
        }
        d[y] -= 1.0f;
        if (factor != 1.0f)
            for (int j = 0; j < classes; j++) d[j] *= factor;
    }
}

/* torch._fused_adam_'s arithmetic (amsgrad and weight decay off). */
static void adam_step(float *restrict theta, const float *restrict grad, float *restrict m, float *restrict v,
                      int64_t size, int64_t step, float lr, float beta1, float beta2, float eps) {
    const double bias1 = 1.0 - pow(beta1, (double)step);
    const double bias2 = 1.0 - pow(beta2, (double)step);
    const float step_size = (float)(lr / bias1);
    const float bias2_sqrt = (float)sqrt(bias2);
    const float one_minus_beta1 = 1.0f - beta1, one_minus_beta2 = 1.0f - beta2;
    for (int64_t k = 0; k < size; k++) {
        const float g = grad[k];
        const float mk = m[k] + one_minus_beta1 * (g - m[k]);
        const float vk = beta2 * v[k] + one_minus_beta2 * g * g;
        m[k] = mk;
        v[k] = vk;
        theta[k] -= step_size * mk / (sqrtf(vk) / bias2_sqrt + eps);
    }
}

/* Train on the chunk's n rows in batches of `batch`; steps are numbered from step0 + 1.
 * logits (n x classes) keeps every batch's logits for the caller's loss bookkeeping; dlogits is scratch of the same
 * shape; grad (classes x width) holds the last step's gradient. Returns the number of steps taken. */
int64_t headloop_steps(void *sgemm_ptr, const float *inputs, const int64_t *targets, const float *row_scale,
                       float *logits, float *dlogits, float *theta, float *grad, float *m, float *v, int n, int batch,
                       int width, int classes, int loss, float gamma, float min_margin, const float *class_weights,
                       float lr, float beta1, float beta2, float eps, int64_t step0) {
    const sgemm_fn sgemm = (sgemm_fn)sgemm_ptr;
    const float one = 1.0f, zero = 0.0f;
    const int64_t size = (int64_t)classes * width;
    int64_t step = step0;
    FLUSH_DENORMALS_BEGIN
    for (int start = 0; start < n; start += batch) {
        const int rows = n - start < batch ? n - start : batch;
        const float *x = inputs + (int64_t)start * width;
        float *l = logits + (int64_t)start * classes;
        float *d = dlogits + (int64_t)start * classes;
        /* column-major view: logits^T (classes x rows) = theta (classes x width) . x^T */
        sgemm("T", "N", &classes, &rows, &width, &one, theta, &width, x, &width, &zero, l, &classes);
        loss_gradient(loss, l, targets + start, row_scale ? row_scale + start : 0, class_weights, gamma, min_margin,
                      d, rows, batch, classes);
        /* grad^T (width x classes) = x^T (width x rows) . dlogits (rows x classes) */
        sgemm("N", "T", &width, &classes, &rows, &one, x, &width, d, &classes, &zero, grad, &width);
        step += 1;
        adam_step(theta, grad, m, v, size, step, lr, beta1, beta2, eps);
    }
    FLUSH_DENORMALS_END
    return step - step0;
}

/* Only the two matmuls of headloop_steps, over the same batches (bench/phase2_head.py: where the time goes). */
int64_t headloop_matmuls(void *sgemm_ptr, const float *inputs, float *logits, float *dlogits, const float *theta,
                         float *grad, int n, int batch, int width, int classes) {
    const sgemm_fn sgemm = (sgemm_fn)sgemm_ptr;
    const float one = 1.0f, zero = 0.0f;
    int64_t steps = 0;
    for (int start = 0; start < n; start += batch, steps++) {
        const int rows = n - start < batch ? n - start : batch;
        const float *x = inputs + (int64_t)start * width;
        sgemm("T", "N", &classes, &rows, &width, &one, theta, &width, x, &width, &zero, logits + (int64_t)start * classes,
              &classes);
        sgemm("N", "T", &width, &classes, &rows, &one, x, &width, dlogits + (int64_t)start * classes, &classes, &zero,
              grad, &width);
    }
    return steps;
}

#if defined(__F16C__)
#include <immintrin.h>
#endif

/* rows[i] = features[index[i]] widened to fp32, into out (row stride `width`), for fp16 (elem_bytes 2) or fp32
 * (4) features of `dim` columns: the chunk gather without torch's per-row index_select dispatch and without a
 * staging copy. Returns 0; -2 for an index outside 0..rows-1 (nothing read); -1 when this build cannot convert
 * fp16 (no F16C): the caller gathers with torch. */
int headloop_gather(const void *features, int elem_bytes, int64_t rows, int64_t dim, const int64_t *index, int n,
                    float *out, int width) {
    for (int i = 0; i < n; i++)
        if (index[i] < 0 || index[i] >= rows) return -2;
    if (elem_bytes == 4) {
        for (int i = 0; i < n; i++) {
            const float *src = (const float *)features + index[i] * dim;
            float *dst = out + (int64_t)i * width;
            for (int64_t k = 0; k < dim; k++) dst[k] = src[k];
        }
        return 0;
    }
#if defined(__F16C__)
    if (elem_bytes == 2) {
        for (int i = 0; i < n; i++) {
            const uint16_t *src = (const uint16_t *)features + index[i] * dim;
            float *dst = out + (int64_t)i * width;
            int64_t k = 0;
            for (; k + 8 <= dim; k += 8)
                _mm256_storeu_ps(dst + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + k))));
            for (; k < dim; k++) dst[k] = _cvtsh_ss(src[k]);
        }
        return 0;
    }
#endif
    return -1;
}
