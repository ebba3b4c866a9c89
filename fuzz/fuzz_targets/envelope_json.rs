//! Any bytes given to `Envelope::from_json` give an envelope or a typed error, never a panic;
//! an envelope that decodes encodes and decodes again to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saga_core::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::from_json(data) {
        let bytes = env.to_json().expect("a decoded envelope encodes");
        assert_eq!(Envelope::from_json(&bytes).expect("and decodes again"), env);
    }
});
