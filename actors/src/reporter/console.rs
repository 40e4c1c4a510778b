//! The user's console (stdout for the CLI), shared by the terminal and summary sinks: whole
//! lines, pytest-style progress characters, and the live progress bar that lines go above.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::progress::Progress;

/// The console, as the sinks that write to it hold it.
#[derive(Clone)]
pub struct SharedConsole(Arc<Mutex<Console>>);

impl SharedConsole {
    /// A console writing to `out`, with a live progress bar on stdout if `progress_bar`.
    pub fn new(out: Box<dyn Write + Send>, progress_bar: bool) -> SharedConsole {
        SharedConsole(Arc::new(Mutex::new(Console {
            out,
            progress: progress_bar.then(Progress::on_stdout),
            column: 0,
            mute: None,
            unflushed: false,
            flushed_at: Instant::now(),
        })))
    }

    /// Says nothing once `usage_error` is set: the runner refused the command line, and its
    /// own message (printed by the CLI) is all the user sees, as with the runner alone.
    pub fn mute_when(&self, usage_error: Arc<OnceLock<String>>) {
        self.lock().mute = Some(usage_error);
    }

    /// The console, to write to.
    pub fn lock(&self) -> MutexGuard<'_, Console> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Flushes progress characters that wait (see [`PROGRESS_FLUSH`]).
    pub fn flush_pending(&self) {
        let mut console = self.lock();
        if console.unflushed {
            console.flush();
        }
    }
}

/// Where user-facing text goes.
pub struct Console {
    out: Box<dyn Write + Send>,
    progress: Option<Progress>,
    /// Progress characters on the current line.
    column: usize,
    /// Set: nothing more is printed (see [`SharedConsole::mute_when`]).
    mute: Option<Arc<OnceLock<String>>>,
    /// Progress characters written but not flushed yet, and when the last flush was.
    unflushed: bool,
    flushed_at: Instant,
}

/// Progress characters are flushed at most this often (each flush wakes the terminal; 10,000
/// fast tests would otherwise make 10,000 writes); [`SharedConsole::flush_pending`], on a
/// timer, flushes what waits.
pub const PROGRESS_FLUSH: Duration = Duration::from_millis(40);

impl Console {
    /// Prints one line (above the progress bar, if one is shown; after the progress
    /// characters' line is ended, if one is open).
    pub fn line(&mut self, text: impl AsRef<str>) {
        if self.muted() {
            return;
        }
        if let Some(progress) = &self.progress {
            progress.println(text.as_ref());
            return;
        }
        if self.column > 0 {
            let _ = writeln!(self.out);
            self.column = 0;
        }
        let _ = writeln!(self.out, "{}", text.as_ref());
    }

    /// One progress character; a line ends every 60 tests, and after the last, with the share
    /// done (`done` of `total`, this one included).
    pub fn progress_char(&mut self, letter: char, done: usize, total: usize) {
        if self.muted() {
            return;
        }
        let _ = write!(self.out, "{letter}");
        self.column += 1;
        if self.column >= 60 || done == total {
            let pct = done * 100 / total.max(1);
            let pad = 60 - self.column;
            let _ = writeln!(self.out, "{:pad$} [{pct:>3}%]", "");
            self.column = 0;
        }
        if done == total || self.flushed_at.elapsed() >= PROGRESS_FLUSH {
            self.flush();
        } else {
            self.unflushed = true;
        }
    }

    /// Whether the session turned out to be a usage error (see [`SharedConsole::mute_when`]).
    pub fn muted(&self) -> bool {
        self.mute.as_ref().is_some_and(|m| m.get().is_some())
    }

    /// The progress bar, while it is shown.
    pub fn progress_bar(&mut self) -> Option<&mut Progress> {
        self.progress.as_mut()
    }

    /// Removes the progress bar (before the summary).
    pub fn end_progress_bar(&mut self) {
        if let Some(progress) = self.progress.take() {
            progress.finish();
        }
    }

    /// Flushes what was written.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
        self.unflushed = false;
        self.flushed_at = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the flushes of what it is given.
    #[derive(Clone, Default)]
    struct Flushes(Arc<Mutex<usize>>);

    impl Write for Flushes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            *self.0.lock().unwrap() += 1;
            Ok(())
        }
    }

    #[test]
    fn progress_characters_are_flushed_at_most_so_often_and_the_last_at_once() {
        let flushes = Flushes::default();
        let console = SharedConsole::new(Box::new(flushes.clone()), false);
        let count = || *flushes.0.lock().unwrap();
        for done in 1..=50 {
            console.lock().progress_char('.', done, 100);
        }
        assert!(
            count() < 10,
            "a burst of characters is not flushed one by one"
        );
        console.flush_pending();
        assert!(
            !console.lock().unflushed,
            "what waits is flushed on the timer"
        );
        let after = count();
        console.flush_pending();
        assert_eq!(count(), after, "nothing waits: no flush");
        console.lock().progress_char('.', 100, 100);
        assert_eq!(count(), after + 1, "the last test's character goes at once");
    }
}
