//! Payment-success prediction: a calibrated probability that a charge succeeds, from the
//! payment method, the amount, the customer's history and the recent health of the gateway.
//!
//! - [`PaymentAttempt`] is what is known when a charge is about to be sent; [`PaymentHistory`]
//!   turns it into [`PaymentFeatures`] (customer successes and failures so far, account age, the
//!   method's error rate over the last minutes). The same code builds features at training time
//!   and at scoring time.
//! - [`PaymentModel`]: logistic regression (Newton's method, L2 penalty chosen on a validation
//!   split) followed by a calibration step (Platt scaling or isotonic regression, chosen by
//!   cross-fitting on the validation split).
//! - [`MethodRateBaseline`]: the success rate of each method, the baseline.
//! - [`generate_payments`]: seeded attempts with their TRUE success probability (a logistic
//!   ground truth with interactions, hidden customer reliability and gateway outages), so the
//!   evaluation can put the model beside the oracle.
//! - [`evaluate_payment`]: the whole protocol (train on earlier days, calibrate on the next,
//!   test on the last week).
//!
//! ```
//! use saga_ai::payment::{
//!     generate_payments, PaymentGeneratorConfig, PaymentHistory, PaymentModel,
//!     PaymentSuccessPredictor,
//! };
//! let data = generate_payments(&PaymentGeneratorConfig { days: 4, attempts_per_day: 1500, ..Default::default() }).unwrap();
//! let rows = PaymentHistory::new(15).unwrap().replay(&data).unwrap();
//! let (train, valid) = rows.split_at(rows.len() * 3 / 4);
//! let model = PaymentModel::fit(train, valid).unwrap();
//! let p = model.success_probability(&rows[0].0).unwrap();
//! assert!((0.0..=1.0).contains(&p));
//! ```

mod attempt;
mod baseline;
mod calibration;
mod evaluate;
mod generator;
mod history;
mod logistic;
mod model;

pub use attempt::{PaymentAttempt, PaymentFeatures, PaymentMethod};
pub use baseline::MethodRateBaseline;
pub use calibration::Calibrator;
pub use evaluate::{PaymentEvalConfig, PaymentEvaluation, PaymentRow, evaluate_payment};
pub use generator::{GeneratedAttempt, PaymentGeneratorConfig, generate_payments};
pub use history::PaymentHistory;
pub use logistic::LogisticRegression;
pub use model::{PAYMENT_FEATURES, PAYMENT_FORMAT, PAYMENT_KIND, PaymentModel};

use crate::error::Result;

/// Anything that gives the probability that a payment attempt succeeds.
pub trait PaymentSuccessPredictor {
    /// The probability, in `[0, 1]`, that a charge with these features succeeds.
    ///
    /// Invalid features (NaN or negative amount, more gateway failures than attempts) are an
    /// [`AiError::InvalidInput`](crate::AiError::InvalidInput).
    fn success_probability(&self, features: &PaymentFeatures) -> Result<f64>;
}
