//! Derivative-free minimisation of a smoothing model's in-sample error: a bounded Nelder–Mead
//! simplex, started from the best point of a coarse grid so that a bumpy error surface does not
//! trap it in a poor corner.

/// Minimises `f` over the box `lower..=upper` (one bound pair per parameter). Returns the best
/// point found and its value. Non-finite values of `f` count as worse than any finite one.
pub(crate) fn minimize<F>(f: F, lower: &[f64], upper: &[f64], grid: usize) -> (Vec<f64>, f64)
where
    F: Fn(&[f64]) -> f64,
{
    let dim = lower.len();
    let clamp = |x: &mut Vec<f64>| {
        for (i, v) in x.iter_mut().enumerate() {
            *v = v.clamp(lower[i], upper[i]);
        }
    };
    let eval = |x: &[f64]| {
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };

    // Coarse grid: `grid` points per dimension, inside the box.
    let grid = grid.max(2);
    let mut best = lower.to_vec();
    let mut best_value = f64::INFINITY;
    let mut index = vec![0usize; dim];
    loop {
        let x: Vec<f64> = (0..dim)
            .map(|i| lower[i] + (upper[i] - lower[i]) * (index[i] as f64 + 0.5) / grid as f64)
            .collect();
        let v = eval(&x);
        if v < best_value {
            best_value = v;
            best = x;
        }
        let mut d = 0;
        while d < dim {
            index[d] += 1;
            if index[d] < grid {
                break;
            }
            index[d] = 0;
            d += 1;
        }
        if d == dim {
            break;
        }
    }

    // Nelder–Mead from the grid's best point, steps of a grid cell.
    let mut simplex = vec![best.clone()];
    for i in 0..dim {
        let mut x = best.clone();
        let step = (upper[i] - lower[i]) / grid as f64;
        x[i] = if x[i] + step <= upper[i] {
            x[i] + step
        } else {
            x[i] - step
        };
        simplex.push(x);
    }
    let mut values: Vec<f64> = simplex.iter().map(|x| eval(x)).collect();
    for _ in 0..200 * dim {
        let mut order: Vec<usize> = (0..=dim).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        simplex = order.iter().map(|&i| simplex[i].clone()).collect();
        values = order.iter().map(|&i| values[i]).collect();
        let spread = values[dim] - values[0];
        if spread.abs() <= 1e-10 * (values[0].abs() + 1e-20) {
            break;
        }
        let centroid: Vec<f64> = (0..dim)
            .map(|i| simplex[..dim].iter().map(|x| x[i]).sum::<f64>() / dim as f64)
            .collect();
        let toward = |t: f64| {
            let mut x: Vec<f64> = (0..dim)
                .map(|i| centroid[i] + t * (simplex[dim][i] - centroid[i]))
                .collect();
            clamp(&mut x);
            x
        };
        let reflected = toward(-1.0);
        let fr = eval(&reflected);
        if fr < values[0] {
            let expanded = toward(-2.0);
            let fe = eval(&expanded);
            if fe < fr {
                simplex[dim] = expanded;
                values[dim] = fe;
            } else {
                simplex[dim] = reflected;
                values[dim] = fr;
            }
        } else if fr < values[dim - 1] {
            simplex[dim] = reflected;
            values[dim] = fr;
        } else {
            let contracted = if fr < values[dim] {
                toward(-0.5)
            } else {
                toward(0.5)
            };
            let fc = eval(&contracted);
            if fc < values[dim].min(fr) {
                simplex[dim] = contracted;
                values[dim] = fc;
            } else {
                for j in 1..=dim {
                    let x: Vec<f64> = (0..dim)
                        .map(|i| simplex[0][i] + 0.5 * (simplex[j][i] - simplex[0][i]))
                        .collect();
                    values[j] = eval(&x);
                    simplex[j] = x;
                }
            }
        }
    }
    let i = (0..=dim)
        .min_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0);
    if values[i] < best_value {
        (simplex[i].clone(), values[i])
    } else {
        (best, best_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_bowl_inside_the_box() {
        let (x, v) = minimize(
            |x| (x[0] - 0.3).powi(2) + 2.0 * (x[1] - 0.7).powi(2),
            &[0.0, 0.0],
            &[1.0, 1.0],
            5,
        );
        assert!(
            (x[0] - 0.3).abs() < 1e-4 && (x[1] - 0.7).abs() < 1e-4,
            "{x:?}"
        );
        assert!(v < 1e-7);
    }

    #[test]
    fn stays_on_the_boundary_when_the_minimum_lies_outside() {
        let (x, _) = minimize(|x| (x[0] - 2.0).powi(2), &[0.0], &[1.0], 5);
        assert!((x[0] - 1.0).abs() < 1e-6);
    }
}
