//! Progress bars on stderr for long work. On a terminal they redraw in
//! place; otherwise (a log file, a batch job's output) a bar writes its line
//! at most every [`LOG_EVERY`], so a job run in the background still shows
//! how far it is.

use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// How often a bar writes a line when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

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
    resumed_bar(what, total, 0)
}

/// [`count_bar`] for work of which an earlier run did `done`: it starts
/// there, and its rate and ETA count only this run's progress.
pub fn resumed_bar(what: &str, total: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar.set_position(done);
    bar.reset_eta();
    bar.set_draw_target(if io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::term_like_with_hz(Box::new(LogLines::every(LOG_EVERY)), 1)
    });
    bar
}

/// A bar's draw target that writes each drawn line as a plain line on
/// stderr, at most once per `every` (the first at once; a cleared bar
/// writes nothing). No cursor moves: the lines stack up in the log.
#[derive(Debug)]
struct LogLines {
    every: Duration,
    /// The line being drawn, and when a line was last written.
    state: Mutex<(String, Option<Instant>)>,
}

impl LogLines {
    fn every(every: Duration) -> Self {
        LogLines { every, state: Mutex::new((String::new(), None)) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (String, Option<Instant>)> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The line to write now, if any: the drawn text, unless it is empty or
    /// a line was written less than `every` ago.
    fn due(&self, now: Instant) -> Option<String> {
        let mut state = self.state();
        let line = std::mem::take(&mut state.0).trim().to_owned();
        if line.is_empty() || state.1.is_some_and(|last| now.duration_since(last) < self.every) {
            return None;
        }
        state.1 = Some(now);
        Some(line)
    }
}

impl TermLike for LogLines {
    fn width(&self) -> u16 {
        120
    }

    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write_str(s)
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.state().0.push_str(&s.replace('\r', ""));
        Ok(())
    }

    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        match self.due(Instant::now()) {
            Some(line) => writeln!(io::stderr(), "{line}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_is_written_at_once_then_at_most_once_per_period() {
        let log = LogLines::every(Duration::from_secs(30));
        let start = Instant::now();
        log.write_str("\rfeatures [=>  ] 1/10").unwrap();
        assert_eq!(log.due(start).as_deref(), Some("features [=>  ] 1/10"), "the first draw is written");
        log.write_str("features [==> ] 2/10").unwrap();
        assert_eq!(log.due(start + Duration::from_secs(10)), None, "too soon");
        log.write_str("features [===>] 3/10").unwrap();
        assert_eq!(
            log.due(start + Duration::from_secs(31)).as_deref(),
            Some("features [===>] 3/10"),
            "only the latest"
        );
        assert_eq!(log.due(start + Duration::from_secs(90)), None, "a cleared bar writes nothing");
    }
}
