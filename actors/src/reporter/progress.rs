//! The live progress bar (indicatif) shown on a terminal: tests done out of the total, failures
//! so far, running workers, elapsed time and ETA. Lines printed while it runs go above it.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar drawn on stdout.
pub struct Progress {
    bar: ProgressBar,
    running: usize,
    failures: usize,
}

impl Progress {
    /// A bar on stdout (indicatif draws only when stdout is a terminal).
    pub fn on_stdout() -> Progress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tests  {msg}  ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut progress = Progress {
            bar,
            running: 0,
            failures: 0,
        };
        progress.refresh();
        progress
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: &str) {
        self.bar.println(line);
    }

    /// The number of tests collected.
    pub fn set_total(&self, total: usize) {
        self.bar.set_length(total as u64);
    }

    /// One more test finished.
    pub fn test_finished(&mut self, failed: bool) {
        self.failures += usize::from(failed);
        self.bar.inc(1);
        self.refresh();
    }

    /// A worker process started (`+1`) or exited (`-1`).
    pub fn workers(&mut self, started: bool) {
        self.running = if started {
            self.running + 1
        } else {
            self.running.saturating_sub(1)
        };
        self.refresh();
    }

    fn refresh(&mut self) {
        self.bar.set_message(format!(
            "{} failed  {} workers running",
            self.failures, self.running
        ));
    }

    /// Removes the bar (before the final summary).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
