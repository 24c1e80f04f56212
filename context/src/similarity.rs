//! Vector arithmetic for similarity search: dot products (cosine similarity of unit
//! vectors), normalisation and scalar quantisation to `i8`.

/// Scale `v` to unit length (a zero vector stays zero).
#[cfg(any(test, feature = "test-utils"))]
pub(crate) fn normalise(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Dot product with eight independent accumulators, so the compiler vectorises it.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in rest_a.iter().zip(rest_b) {
        sum += x * y;
    }
    sum
}

/// Scalar quantisation: `v ≈ q × scale` with `q` in -127..=127.
pub(crate) fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (v.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8).collect(), scale)
}

/// Integer dot product with sixteen independent accumulators (vectorised by the compiler).
/// 384 × 127 × 127 fits an `i32` many times over.
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0i32; 16];
    let chunks_a = a.chunks_exact(16);
    let chunks_b = b.chunks_exact(16);
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..16 {
            acc[i] += i32::from(ca[i]) * i32::from(cb[i]);
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in rest_a.iter().zip(rest_b) {
        sum += i32::from(*x) * i32::from(*y);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn quantised_dot_products_track_the_exact_ones() {
        let mut rng = 12345u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for _ in 0..50 {
            let mut a: Vec<f32> = (0..384).map(|_| next()).collect();
            let mut b: Vec<f32> = (0..384).map(|_| next()).collect();
            normalise(&mut a);
            normalise(&mut b);
            let (qa, sa) = quantise(&a);
            let (qb, sb) = quantise(&b);
            let approx = dot_i8(&qa, &qb) as f32 * sa * sb;
            assert!((approx - dot(&a, &b)).abs() < 0.01, "{approx} vs {}", dot(&a, &b));
        }
        assert_eq!(quantise(&[0.0, 0.0]), (vec![0, 0], 0.0));
        assert_eq!(dot_i8(&[127; 19], &[-127; 19]), -127 * 127 * 19);
    }
}
