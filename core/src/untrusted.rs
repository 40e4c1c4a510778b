//! What herd does with peers it has not authenticated: their text is shown escaped, and their
//! refusals are rate-limited, so nobody who can reach `--listen` can forge lines on herd's
//! terminal or bury it under a flood.
//!
//! * [`escape`] turns peer-supplied bytes (a ZeroMQ identity, a claimed worker name, a decode
//!   error quoting a frame) into one printable line of bounded length.
//! * [`RefusalLimit`] decides which refusals are shown: the first few of each window, then one
//!   summary of how many were left out. It is pure: the caller passes `now`.

use std::time::{Duration, Instant};

/// How many characters of peer-supplied text [`escape`] keeps by default.
pub const MAX_SHOWN_CHARS: usize = 200;

/// Peer-supplied bytes as one printable line of at most about `max_chars` characters.
///
/// Printable characters are kept; a backslash becomes `\\`; newline, carriage return and tab
/// become `\n`, `\r`, `\t`; other control characters (ESC, C1 controls, DEL), Unicode line
/// separators and the invisible bidirectional or zero-width formatting characters become
/// `\x1b` or `\u{202e}`; bytes that are not valid UTF-8 become `\xff`. Longer text is cut, and
/// the cut says how many bytes were left out: `...[+1234 bytes]`.
pub fn escape(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    let (mut shown, mut used) = (0, 0);
    'text: for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown >= max_chars {
                break 'text;
            }
            let piece = escape_char(c);
            shown += piece.chars().count();
            out.push_str(&piece);
            used += c.len_utf8();
        }
        for b in chunk.invalid() {
            if shown >= max_chars {
                break 'text;
            }
            out.push_str(&format!("\\x{b:02x}"));
            shown += 4;
            used += 1;
        }
    }
    if used < bytes.len() {
        out.push_str(&format!("...[+{} bytes]", bytes.len() - used));
    }
    out
}

/// [`escape`] for text already decoded (a name from a `hello`, an error message).
pub fn escape_str(text: &str, max_chars: usize) -> String {
    escape(text.as_bytes(), max_chars)
}

/// One character as it may be shown on a terminal.
fn escape_char(c: char) -> String {
    match c {
        '\\' => "\\\\".into(),
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        c if (c as u32) < 0x80 && c.is_control() => format!("\\x{:02x}", c as u32),
        c if c.is_control() || invisible(c) => format!("\\u{{{:x}}}", c as u32),
        c => c.to_string(),
    }
}

/// Characters that move or hide text without being control characters: line and paragraph
/// separators, bidirectional overrides and isolates, zero-width characters.
fn invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x061c | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2069 | 0xfeff
    )
}

/// Refusals left out of one window, for the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed {
    /// How many refusals were not shown.
    pub count: u64,
    /// How long the window they fell in lasted.
    pub over: Duration,
}

impl Suppressed {
    /// The summary line: `refused 1990 more messages from unauthenticated peers in the last
    /// 1.0s`.
    pub fn line(&self) -> String {
        let noun = if self.count == 1 {
            "message"
        } else {
            "messages"
        };
        format!(
            "refused {} more {noun} from unauthenticated peers in the last {:.1}s",
            self.count,
            self.over.as_secs_f64()
        )
    }
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether to show this refusal.
    pub show: bool,
    /// The previous window ended with refusals left out: show their summary first.
    pub summary: Option<Suppressed>,
}

/// Rate limit for refusal notices: in each window of `window`, the first `burst` refusals are
/// shown and the rest only counted; the count is shown as one [`Suppressed`] line when the
/// window ends (at the next refusal, [`RefusalLimit::tick`] or [`RefusalLimit::drain`]). So a
/// window produces at most `burst + 1` lines, however many peers are refused.
#[derive(Debug, Clone)]
pub struct RefusalLimit {
    burst: u32,
    window: Duration,
    started: Option<Instant>,
    shown: u32,
    suppressed: u64,
}

impl RefusalLimit {
    /// Herd's default: 10 refusals shown per second.
    pub const DEFAULT_BURST: u32 = 10;

    /// A limit showing `burst` refusals per `window`.
    pub fn new(burst: u32, window: Duration) -> RefusalLimit {
        RefusalLimit {
            burst,
            window,
            started: None,
            shown: 0,
            suppressed: 0,
        }
    }

    /// The length of a window (how often [`RefusalLimit::tick`] is worth calling).
    pub fn window(&self) -> Duration {
        self.window
    }

    /// A refusal happened at `now`: whether to show it, and the summary of a window it ended.
    pub fn admit(&mut self, now: Instant) -> Admission {
        let summary = self.tick(now);
        self.started.get_or_insert(now);
        let show = self.shown < self.burst;
        if show {
            self.shown += 1;
        } else {
            self.suppressed += 1;
        }
        Admission { show, summary }
    }

    /// Ends the current window if it is over at `now`: the summary of what it left out, if
    /// anything.
    pub fn tick(&mut self, now: Instant) -> Option<Suppressed> {
        let started = self.started?;
        let over = now.saturating_duration_since(started);
        if over < self.window {
            return None;
        }
        self.close(over)
    }

    /// Ends the current window now, whether or not it is over (the session is ending): the
    /// summary of what it left out, if anything.
    pub fn drain(&mut self, now: Instant) -> Option<Suppressed> {
        let started = self.started?;
        self.close(now.saturating_duration_since(started))
    }

    fn close(&mut self, over: Duration) -> Option<Suppressed> {
        let count = std::mem::take(&mut self.suppressed);
        self.started = None;
        self.shown = 0;
        (count > 0).then_some(Suppressed { count, over })
    }
}

impl Default for RefusalLimit {
    fn default() -> RefusalLimit {
        RefusalLimit::new(RefusalLimit::DEFAULT_BURST, Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_kept() {
        assert_eq!(escape(b"w1.1.0af3", 200), "w1.1.0af3");
        assert_eq!(escape_str("café ünïcode", 200), "café ünïcode");
    }

    #[test]
    fn control_characters_newlines_and_escapes_are_shown_escaped() {
        let forged = "x\n9999 passed in 0.01s\r\t\x1b[2J\x1b]0;evil\x07\x7f\\";
        let shown = escape_str(forged, 200);
        assert_eq!(
            shown,
            "x\\n9999 passed in 0.01s\\r\\t\\x1b[2J\\x1b]0;evil\\x07\\x7f\\\\"
        );
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
        // C1 controls, bidi overrides and line separators.
        assert_eq!(
            escape_str("a\u{9b}b\u{202e}c\u{2028}d\u{200b}", 200),
            "a\\u{9b}b\\u{202e}c\\u{2028}d\\u{200b}"
        );
    }

    #[test]
    fn invalid_utf8_is_shown_as_byte_escapes() {
        assert_eq!(escape(b"ok\xff\xfe!", 200), "ok\\xff\\xfe!");
        assert_eq!(escape(b"\xe2\x82", 200), "\\xe2\\x82");
        assert_eq!(escape("é".as_bytes(), 200), "é");
    }

    #[test]
    fn long_text_is_cut_and_the_cut_says_how_much() {
        let long = vec![b'a'; 10_000];
        let shown = escape(&long, 20);
        assert_eq!(shown, format!("{}...[+9980 bytes]", "a".repeat(20)));
        let escapes = vec![0x1bu8; 1000];
        let shown = escape(&escapes, 20);
        assert!(shown.len() < 60, "{shown}");
        assert!(shown.ends_with("...[+995 bytes]"), "{shown}");
        let bad = vec![0xffu8; 1000];
        assert!(escape(&bad, 8).ends_with("...[+998 bytes]"));
        assert_eq!(escape(b"", 10), "");
    }

    #[test]
    fn a_burst_is_shown_then_counted_and_summarised_when_the_window_ends() {
        let t0 = Instant::now();
        let mut limit = RefusalLimit::new(3, Duration::from_secs(1));
        let shown: Vec<bool> = (0..10)
            .map(|i| limit.admit(t0 + Duration::from_millis(i * 10)).show)
            .collect();
        assert_eq!(shown.iter().filter(|s| **s).count(), 3);
        assert!(shown[..3].iter().all(|s| *s));
        assert_eq!(limit.tick(t0 + Duration::from_millis(500)), None);
        let summary = limit.tick(t0 + Duration::from_millis(1200)).unwrap();
        assert_eq!(summary.count, 7);
        assert_eq!(summary.over, Duration::from_millis(1200));
        assert_eq!(
            summary.line(),
            "refused 7 more messages from unauthenticated peers in the last 1.2s"
        );
        // The next window starts afresh.
        assert!(limit.admit(t0 + Duration::from_secs(5)).show);
        assert_eq!(limit.drain(t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn a_refusal_after_the_window_brings_the_summary_of_the_last_one() {
        let t0 = Instant::now();
        let mut limit = RefusalLimit::new(1, Duration::from_secs(1));
        assert!(limit.admit(t0).show);
        assert!(!limit.admit(t0).show);
        let next = limit.admit(t0 + Duration::from_secs(2));
        assert!(next.show);
        assert_eq!(next.summary.map(|s| s.count), Some(1));
    }

    #[test]
    fn a_flood_gives_at_most_burst_plus_one_lines_per_window() {
        let t0 = Instant::now();
        let mut limit = RefusalLimit::default();
        let mut lines = 0;
        let mut refused = 0u64;
        let mut counted = 0u64;
        for i in 0..10_000u64 {
            let a = limit.admit(t0 + Duration::from_micros(i * 300));
            lines += a.show as u64 + a.summary.is_some() as u64;
            refused += a.show as u64;
            counted += a.summary.map_or(0, |s| s.count);
        }
        let last = limit.drain(t0 + Duration::from_secs(3)).unwrap();
        lines += 1;
        counted += last.count;
        // 10,000 refusals over 3 s: 4 windows of at most 11 lines.
        assert!(lines <= 4 * 11, "{lines}");
        assert_eq!(
            refused + counted,
            10_000,
            "every refusal is shown or counted"
        );
        assert_eq!(limit.drain(t0 + Duration::from_secs(4)), None);
    }
}
