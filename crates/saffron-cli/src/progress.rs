//! Progress bars on stderr for long work.

use indicatif::{ProgressBar, ProgressStyle};

/// A byte-count bar for fetching one artifact.
pub struct FetchBar(ProgressBar);

impl FetchBar {
    pub fn new(name: &str, total: u64) -> Self {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {bytes:>10}/{total_bytes:<10} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_owned());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        FetchBar(bar)
    }

    pub fn finish(&self, message: &str) {
        self.0.set_position(self.0.length().unwrap_or(0));
        self.0.finish_with_message(message.to_owned());
    }
}

impl saffron_fetch::Progress for FetchBar {
    fn phase(&self, message: &str) {
        self.0.set_message(message.to_owned());
    }

    fn advance(&self, bytes: u64) {
        self.0.set_position(bytes);
    }
}

/// A bar counting items of long work (labelling, training, judging).
pub fn count_bar(what: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}
