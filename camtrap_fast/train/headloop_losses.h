/* headloop.c's losses: d loss / d logits for each loss the compiled steps train (softmax cross-entropy and its
 * weighted and focal forms, sigmoid focal). Included once, by headloop.c, after headloop_tiles.h. */

/* ---- the losses' d loss / d logits ---------------------------------------------------------------------------- */

/* exp(r) on |r| <= ln2/2, for a float or a vector r: one expression for the scalar and the vector exp, so that
 * both round alike (Horner's scheme, in this order). */
#define EXP_OF_REDUCED(r)                                                                                           \
    ((((((1.9875691500e-4f * (r) + 1.3981999507e-3f) * (r) + 8.3334519073e-3f) * (r) + 4.1665795894e-2f) * (r) +     \
       1.6666665459e-1f) * (r) + 5.0000001201e-1f) * (r) * (r) + (r) + 1.0f)

/* exp(x) for x <= 0 (softmax's max-subtracted logits) in plain arithmetic the compiler vectorizes: x = n ln2 + r,
 * exp(r) by a degree-6 polynomial on |r| <= ln2/2 (relative error ~2e-7, like expf), 2^n by the exponent bits.
 * Below -87 it returns 0 (expf gives a denormal there; the softmax sum is >= 1, so nothing changes beyond 1e-38). */
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float n = __builtin_roundf(x * 1.44269504088896341f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = EXP_OF_REDUCED(r);
    KEEP_IN_REGISTER(p);  /* see exp_nonpositive_v */
    union { float f; int32_t i; } scale = {.i = ((int32_t)n + 127) << 23};
    return x <= -87.0f ? 0.0f : p * scale.f;
}

/* Lane-wise max. */
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

/* exp_nonpositive on each lane, in vector operations that round as its scalar ones do: every float in [-90, 0]
 * gives the same bits both ways, denormals flushed as in the steps (checked exhaustively on 2026-12-03 for
 * -march=native on Zen 5 and for x86-64-v2, -v3 and -v4, and before the asm below for native on Zen 3;
 * tests/test_headloop_exp.py samples it at every level the CPU runs). Not the lane loop over the scalar function:
 * GCC 12 vectorizes that with AVX-512 (vrndscaleps) but with AVX2 ran roundf's ties-away rounding one lane at a
 * time: the loss took 16-17 us of a 64-row step on the Zen 3 host, 5-6 us this way. On Zen 5 this costs ~0.2 us a
 * step more than GCC's AVX-512 code (1.36 against 1.13-1.21 us); one exp checked bit for bit beats two
 * (bench/README.md). roundf(y) for y <= 0: the truncation toward zero, less one where the cut-off part is >= 0.5
 * (y - trunc(y) is exact below 2^23). */
static inline vfloat exp_nonpositive_v(vfloat x) {
    const vfloat floor_x = (vfloat){0} - 87.0f;
    x = maxv(x, floor_x);
    const vfloat y = x * 1.44269504088896341f;
    vint whole = __builtin_convertvector(y, vint);                           /* toward zero: >= y */
    whole += (vint)(__builtin_convertvector(whole, vfloat) - y >= 0.5f);     /* a true lane is -1 */
    const vfloat n = __builtin_convertvector(whole, vfloat);
    const vfloat r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    vfloat p = EXP_OF_REDUCED(r);
    /* Without this GCC (generic x86-64-v3 tuning) distributes the polynomial's last "+ 1" over the scaling below,
     * (q + 1) * 2^n -> q * 2^n + 2^n, whose small product is a denormal for results under ~2^-100: flushed to zero
     * in the steps (FLUSH_DENORMALS_BEGIN), it moved 224,855 of the floats in [-87, -74] off the scalar function's
     * bits (2026-12-03); -march=native on Zen 3 and Zen 5 did not. */
    KEEP_IN_REGISTER(p);
    const vfloat scale = (vfloat)((whole + 127) << 23);
    return (vfloat)((vint)(p * scale) & (vint)(x > floor_x));  /* x <= -87: 0 */
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

/* Lane-wise exact division (the vector extensions' `/` becomes a reciprocal estimate under -ffast-math, which
 * would round the softmax differently from softmax_row's scalar division; the asm keeps the IEEE division). */
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
