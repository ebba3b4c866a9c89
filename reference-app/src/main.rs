//! reference-app
fn main() {}
