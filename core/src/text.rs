//! Text that cannot travel as it is: frames whose strings JSON cannot carry, and output too large
//! for a report.
//!
//! * [`repair_frame`] makes a frame decodable when its strings hold what strict JSON (and Rust's
//!   `String`) cannot: a lone UTF-16 surrogate escape (`"\udcff"`, which Python's `json` writes
//!   for a `surrogateescape`d byte), bytes that are not UTF-8, raw control characters. Each is
//!   replaced by visible escape text (`\udcff`, `\xff`, `\u0001`), so a report is never dropped
//!   for its text, and nothing in it is silently changed into something else.
//! * [`indent_tail`] shows the last lines of an output, indented, for a report.
//! * [`cut_middle`] shortens an output that is too large: the head and the tail are kept, and a
//!   note in between says how much was cut.

use std::borrow::Cow;

/// The frame with every string made decodable, or `None` when nothing needed repair.
///
/// Only the insides of JSON strings are touched; the structure is left as it is, so a frame that
/// is malformed for another reason stays malformed.
pub fn repair_frame(frame: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(frame.len() + 16);
    let mut changed = false;
    let mut in_string = false;
    let mut i = 0;
    while i < frame.len() {
        let b = frame[i];
        if !in_string {
            in_string = b == b'"';
            out.push(b);
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                out.push(b);
                i += 1;
            }
            b'\\' => i += copy_escape(&frame[i..], &mut out, &mut changed),
            0x00..=0x1f => {
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                changed = true;
                i += 1;
            }
            0x80.. => match utf8_len(&frame[i..]) {
                Some(n) => {
                    out.extend_from_slice(&frame[i..i + n]);
                    i += n;
                }
                None => {
                    out.extend_from_slice(format!("\\\\x{b:02x}").as_bytes());
                    changed = true;
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// Copies the escape sequence at the start of `rest` (which starts with a backslash); a lone
/// surrogate escape becomes the text `\uXXXX`. Returns the bytes consumed.
fn copy_escape(rest: &[u8], out: &mut Vec<u8>, changed: &mut bool) -> usize {
    let Some(unit) = unicode_escape(rest) else {
        let n = rest.len().min(2);
        out.extend_from_slice(&rest[..n]);
        return n;
    };
    let is_high = (0xd800..0xdc00).contains(&unit);
    let is_low = (0xdc00..0xe000).contains(&unit);
    if is_high {
        if let Some(next) = rest.get(6..).and_then(unicode_escape) {
            if (0xdc00..0xe000).contains(&next) {
                out.extend_from_slice(&rest[..12]);
                return 12;
            }
        }
    }
    if is_high || is_low {
        // A backslash of its own, then the code as text: `\udcff` is shown, not decoded.
        out.extend_from_slice(b"\\\\");
        out.extend_from_slice(&rest[1..6]);
        *changed = true;
    } else {
        out.extend_from_slice(&rest[..6]);
    }
    6
}

/// The code unit of a `\uXXXX` escape at the start of `rest`.
fn unicode_escape(rest: &[u8]) -> Option<u32> {
    if rest.len() < 6 || rest[0] != b'\\' || rest[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&rest[2..6]).ok()?;
    u32::from_str_radix(hex, 16).ok()
}

/// The length of the valid UTF-8 sequence at the start of `rest`, if there is one.
fn utf8_len(rest: &[u8]) -> Option<usize> {
    let n = match rest[0] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let bytes = rest.get(..n)?;
    std::str::from_utf8(bytes).ok().map(|_| n)
}

/// `text` if it is at most `limit` bytes; otherwise its first quarter and last three quarters of
/// `limit` (at character boundaries) with a note between them saying what was cut.
pub fn cut_middle(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let head_end = floor_boundary(text, limit / 4);
    let tail_start = ceil_boundary(text, text.len() - (limit - limit / 4));
    let (head, tail) = (&text[..head_end], &text[tail_start..]);
    let cut = text.len() - head.len() - tail.len();
    Cow::Owned(format!(
        "{head}\n[herd: {} cut here; the output was {} in all, of which the first {} and the \
         last {} are kept]\n{tail}",
        human_bytes(cut),
        human_bytes(text.len()),
        human_bytes(head.len()),
        human_bytes(tail.len()),
    ))
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// A byte count for people: `512 B`, `64.0 KiB`, `48.2 MiB`.
pub fn human_bytes(n: usize) -> String {
    const KIB: f64 = 1024.0;
    let n_f = n as f64;
    if n_f < KIB {
        format!("{n} B")
    } else if n_f < KIB * KIB {
        format!("{:.1} KiB", n_f / KIB)
    } else {
        format!("{:.1} MiB", n_f / (KIB * KIB))
    }
}

/// The last `lines` lines of `text`, each indented, after a newline (empty when `text` is blank).
pub fn indent_tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.iter().all(|l| l.trim().is_empty()) {
        return String::new();
    }
    tail.iter().map(|l| format!("\n    {l}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repaired(frame: &str) -> String {
        String::from_utf8(repair_frame(frame.as_bytes()).expect("needs repair")).unwrap()
    }

    #[test]
    fn a_lone_surrogate_becomes_visible_text() {
        let frame = r#"{"m":"x \udcff y"}"#;
        let fixed = repaired(frame);
        let v: serde_json::Value = serde_json::from_str(&fixed).unwrap();
        assert_eq!(v["m"], r"x \udcff y");
        // A lone high surrogate, also at the end of a string.
        let v: serde_json::Value =
            serde_json::from_str(&repaired(r#"["\ud83d","\ud83dz"]"#)).unwrap();
        assert_eq!(v, serde_json::json!([r"\ud83d", r"\ud83dz"]));
    }

    #[test]
    fn a_valid_pair_and_ordinary_escapes_are_left_alone() {
        assert_eq!(
            repair_frame(br#"{"m":"\ud83d\ude00 \n \" \\udcff \u00e9"}"#),
            None
        );
        assert_eq!(repair_frame("{\"m\":\"é ✓ 😀\"}".as_bytes()), None);
    }

    #[test]
    fn bytes_that_are_not_utf8_become_hex_text() {
        let frame = b"{\"m\":\"a\xffb\xc3\"}";
        let fixed = repair_frame(frame).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(v["m"], r"a\xffb\xc3");
    }

    #[test]
    fn raw_control_characters_are_escaped() {
        let v: serde_json::Value = serde_json::from_str(&repaired("{\"m\":\"a\u{1}b\"}")).unwrap();
        assert_eq!(v["m"], "a\u{1}b");
    }

    #[test]
    fn structure_is_never_changed() {
        // Malformed for another reason: still malformed after repair.
        let fixed = repair_frame(b"{\"m\":\"\xff\"").unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&fixed).is_err());
    }

    #[test]
    fn cut_middle_keeps_head_and_tail_and_says_so() {
        let text = format!(
            "{}{}{}",
            "H".repeat(100),
            "m".repeat(10_000),
            "T".repeat(300)
        );
        let cut = cut_middle(&text, 1000);
        assert!(cut.starts_with(&"H".repeat(100)));
        assert!(cut.ends_with(&"T".repeat(300)));
        assert!(
            cut.contains("cut here; the output was 10.2 KiB in all"),
            "{cut}"
        );
        assert!(cut.len() < 1200);
        assert_eq!(cut_middle("short", 10), "short");
    }

    #[test]
    fn cut_middle_respects_character_boundaries() {
        let text = "é".repeat(5000);
        let cut = cut_middle(&text, 1001);
        assert!(cut.contains("[herd:"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 * 1024), "64.0 KiB");
        assert_eq!(human_bytes(50 * 1024 * 1024), "50.0 MiB");
    }
}
