//! Progress display shared by the training and evaluation programs (feature `cli`).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what`, with elapsed time.
pub fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Runs `work` under a spinner that shows each stage `work` reports, then how long it took.
pub fn with_spinner<T>(work: impl FnOnce(&mut dyn FnMut(&str)) -> T) -> T {
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    let result = work(&mut |stage| spinner.set_message(stage.to_owned()));
    spinner.finish_with_message(format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    result
}
