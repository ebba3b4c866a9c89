//! Any bytes given to the CloudEvents parser give an envelope or a typed error, never a panic;
//! a parsed envelope maps to CloudEvents and back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saga_core::cloudevents::{from_cloudevent, from_cloudevent_json, to_cloudevent};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = from_cloudevent_json(data) {
        let again = from_cloudevent(&to_cloudevent(&env));
        if let Ok(again) = again {
            assert_eq!(again, env);
        }
    }
});
