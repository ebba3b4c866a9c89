//! The assistant's parser on its held-out phrasings: intent accuracy of at least 95% on the
//! test set, and no test or validation phrasing that the training set already holds.

use std::collections::BTreeSet;

use saga_ai::assistant::eval::{TEST_PHRASES, VALID_PHRASES, evaluate, parse_cases};
use saga_ai::assistant::intent::{
    TRAINING_CATALOG, TRAINING_PHRASES, parse_catalog, parse_training, surface_form,
};
use saga_ai::assistant::{IntentKind, IntentParser};

#[test]
fn evaluation_sets_share_no_phrasing_with_training_or_each_other() {
    let catalog = parse_catalog(TRAINING_CATALOG).unwrap();
    let training: BTreeSet<String> = parse_training(TRAINING_PHRASES)
        .unwrap()
        .iter()
        .map(|(_, text)| surface_form(text, &catalog))
        .collect();
    let valid: BTreeSet<String> = parse_cases(VALID_PHRASES)
        .unwrap()
        .iter()
        .map(|c| surface_form(&c.text, &catalog))
        .collect();
    let mut shared: Vec<String> = parse_cases(TEST_PHRASES)
        .unwrap()
        .iter()
        .map(|c| surface_form(&c.text, &catalog))
        .filter(|form| training.contains(form) || valid.contains(form))
        .collect();
    shared.extend(valid.iter().filter(|f| training.contains(*f)).cloned());
    assert!(
        shared.is_empty(),
        "phrasings shared with training or validation: {shared:#?}"
    );
}

#[test]
fn the_test_set_is_large_and_covers_every_intent() {
    let cases = parse_cases(TEST_PHRASES).unwrap();
    assert!(cases.len() >= 80, "{} test phrasings", cases.len());
    for kind in IntentKind::ALL {
        assert!(
            cases.iter().filter(|c| c.intent == kind).count() >= 5,
            "fewer than 5 test phrasings for {kind}"
        );
    }
}

#[test]
fn intent_accuracy_on_the_test_set_is_at_least_95_percent() {
    let parser = IntentParser::new().unwrap();
    let catalog = parse_catalog(TRAINING_CATALOG).unwrap();
    let cases = parse_cases(TEST_PHRASES).unwrap();
    let eval = evaluate(&parser, &cases, &catalog).unwrap();
    assert!(
        eval.intent_accuracy() >= 0.95,
        "intent accuracy {:.3}; misses: {:#?}",
        eval.intent_accuracy(),
        eval.misses
    );
    assert!(
        eval.entity_accuracy() >= 0.90,
        "entity accuracy {:.3}; misses: {:#?}",
        eval.entity_accuracy(),
        eval.misses
    );
}
