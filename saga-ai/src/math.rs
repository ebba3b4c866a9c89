//! Small numeric helpers shared by the models.

/// The logistic function, safe for any finite input (no overflow of `exp`).
pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}
