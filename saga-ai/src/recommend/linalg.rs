//! The inverse of a dense symmetric positive-definite matrix by Cholesky factorisation, the one
//! piece of linear algebra EASE needs. Row-major, `f64`, `n³/2` multiply-adds, every inner loop
//! over contiguous memory.

use crate::error::{AiError, Result};

/// Inverts the symmetric positive-definite `n x n` matrix `a` (row-major; only its lower
/// triangle is read). Returns the full symmetric inverse, row-major.
///
/// Steps: `A = L Lᵀ` (Cholesky–Banachiewicz), `M = L⁻¹` by forward substitution row by row, then
/// `A⁻¹ = Mᵀ M`. A matrix that is not positive definite (a pivot `<= 0` or not finite) is
/// [`AiError::Fit`]; a length other than `n²` is [`AiError::InvalidInput`].
///
/// ```
/// use saga_ai::recommend::linalg::spd_inverse;
/// let inv = spd_inverse(&[4.0, 2.0, 2.0, 3.0], 2).unwrap();
/// // [[4, 2], [2, 3]]⁻¹ = [[3, -2], [-2, 4]] / 8
/// let expected = [0.375, -0.25, -0.25, 0.5];
/// assert!(inv.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
pub fn spd_inverse(a: &[f64], n: usize) -> Result<Vec<f64>> {
    if a.len() != n.saturating_mul(n) {
        return Err(AiError::InvalidInput(format!(
            "matrix of {} entries is not {n} x {n}",
            a.len()
        )));
    }
    let l = cholesky(a, n)?;
    let m = lower_inverse(&l, n);
    Ok(gram_of_lower(&m, n))
}

/// Dot product with four running sums, so the compiler can vectorise it.
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    let (xc, yc) = (x.chunks_exact(4), y.chunks_exact(4));
    let tail: f64 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for k in 0..4 {
            acc[k] += a[k] * b[k];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Lower-triangular `L` with `A = L Lᵀ` (the upper triangle of the result is zero).
fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s = a[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return Err(AiError::Fit(format!(
                        "matrix is not positive definite (pivot {i} is {s})"
                    )));
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Ok(l)
}

/// `L⁻¹` for lower-triangular `L` with a positive diagonal: row `i` of `M` is
/// `(eᵢ - Σ_{k<i} L[i][k] M[k]) / L[i][i]`, and row `k` of `M` is zero past column `k`.
fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        let (done, rest) = m.split_at_mut(i * n);
        let row = &mut rest[..n];
        row[i] = 1.0;
        for k in 0..i {
            let f = l[i * n + k];
            if f != 0.0 {
                let mk = &done[k * n..k * n + k + 1];
                for (r, v) in row[..=k].iter_mut().zip(mk) {
                    *r -= f * v;
                }
            }
        }
        let d = l[i * n + i];
        for r in &mut row[..=i] {
            *r /= d;
        }
    }
    m
}

/// `Mᵀ M` for lower-triangular `M`, accumulated row by row into the lower triangle and mirrored.
fn gram_of_lower(m: &[f64], n: usize) -> Vec<f64> {
    let mut p = vec![0.0; n * n];
    for i in 0..n {
        let mi = &m[i * n..i * n + i + 1];
        for (a, &f) in mi.iter().enumerate() {
            if f != 0.0 {
                for (pv, &v) in p[a * n..a * n + a + 1].iter_mut().zip(&mi[..=a]) {
                    *pv += f * v;
                }
            }
        }
    }
    for a in 0..n {
        for b in 0..a {
            p[b * n + a] = p[a * n + b];
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn random_spd(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let x: Vec<f64> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| x[k * n + i] * x[k * n + j]).sum::<f64>();
            }
            a[i * n + i] += 0.5;
        }
        a
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        let n = 12;
        let a = random_spd(n, 7);
        let inv = spd_inverse(&a, n).unwrap();
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-8, "({i},{j}) = {v}");
            }
        }
    }

    #[test]
    fn not_positive_definite_is_a_fit_error() {
        assert!(matches!(
            spd_inverse(&[1.0, 2.0, 2.0, 1.0], 2),
            Err(AiError::Fit(_))
        ));
        assert!(matches!(spd_inverse(&[f64::NAN], 1), Err(AiError::Fit(_))));
    }

    #[test]
    fn wrong_length_is_invalid_input() {
        assert!(matches!(
            spd_inverse(&[1.0, 2.0, 3.0], 2),
            Err(AiError::InvalidInput(_))
        ));
    }

    #[test]
    fn empty_matrix_has_empty_inverse() {
        assert!(spd_inverse(&[], 0).unwrap().is_empty());
    }
}
