//! Any bytes given as the body of `POST /orders` give a valid order or the problem document
//! the client would get (400 malformed or 422 validation, naming the bad fields), never a
//! panic. It runs the route's own decoding and validation
//! (`reference_app::api::order::parse_order_request`); an accepted order keeps the limits the
//! saga relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reference_app::api::Money;
use reference_app::api::order::{MAX_ITEMS, MAX_QUANTITY, parse_order_request};

fuzz_target!(|data: &[u8]| {
    match parse_order_request(data) {
        Ok(order) => {
            assert!((1..=MAX_ITEMS).contains(&order.items.len()));
            let mut total = 0i64;
            for item in &order.items {
                assert!((1..=MAX_QUANTITY).contains(&item.quantity));
                assert!(!item.product_id.trim().is_empty() && item.product_id.len() <= 64);
                assert!(item.price.cents() >= 0);
                total += item.price.cents() * item.quantity;
            }
            assert_eq!(order.total_amount.cents(), total);
            assert!(total <= Money::MAX_CENTS);
        }
        Err(problem) => {
            assert!(
                matches!(
                    (problem.status, problem.kind.as_str()),
                    (400, "/problems/malformed") | (422, "/problems/validation")
                ),
                "unexpected problem {problem:?}"
            );
            assert!(problem.status != 422 || !problem.detail.is_empty());
        }
    }
});
