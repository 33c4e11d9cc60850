//! Numbers and text as the tool prints them for people: LSN ranges,
//! times, sizes, counts, and text cells that cannot move the cursor.

use std::time::Duration;
use tracejournal::trace::iso8601;

/// `1 to 3 (next 4)`, or `none (next 1)` for an empty log.
pub(crate) fn lsn_range(records: u64, first: u64, next: u64) -> String {
    if records == 0 || next <= first {
        format!("none (next {next})")
    } else {
        format!("{first} to {} (next {next})", next - 1)
    }
}

/// `12.345 ms`.
pub(crate) fn millis(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Text for a table cell or a message: control and invisible formatting
/// characters escaped (a title cannot move the cursor or reorder the
/// line), cut to `max` characters with `…`.
pub(crate) fn cell(text: &str, max: usize) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        let invisible = matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        );
        if c.is_control() || invisible {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    if escaped.chars().count() <= max {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `2026-03-15 10:00:05` (UTC).
pub(crate) fn started(ms: u64) -> String {
    let iso = iso8601(ms);
    format!("{} {}", &iso[..10], &iso[11..19])
}

/// `850ms`, `12.3s`, `4m 05s`, `2h 13m`.
pub(crate) fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// `8,431`, `48.2k`, `1.25M`.
pub(crate) fn tokens(n: u64) -> String {
    match n {
        0..=9_999 => thousands(n),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

/// `$0.41`; `<$0.01` for a small non-zero cost.
pub(crate) fn cost(dollars: f64) -> String {
    if dollars > 0.0 && dollars < 0.005 {
        "<$0.01".to_string()
    } else {
        format!("${dollars:.2}")
    }
}

/// `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

/// `1 event`, `1,234 events`.
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// `1.4 MB`.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        0..=9_999 => format!("{} bytes", thousands(n)),
        10_000..=999_999 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// `"text"` with control characters escaped, cut to 200 characters.
pub(crate) fn quoted(text: &str) -> String {
    format!("\"{}\"", cell(text, 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_are_escaped_and_cut() {
        assert_eq!(cell("plain", 10), "plain");
        assert_eq!(cell("a\nb\u{1b}[2J", 20), "a\\nb\\u{1b}[2J");
        assert_eq!(cell("\u{202e}evil", 20), "\\u{202e}evil");
        assert_eq!(cell("abcdefghij", 5), "abcd…");
        assert_eq!(cell("ééééé", 5), "ééééé");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(100), "100");
        assert_eq!(tokens(9_999), "9,999");
        assert_eq!(tokens(48_240), "48.2k");
        assert_eq!(tokens(1_250_000), "1.25M");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(245_000), "4m 05s");
        assert_eq!(duration(7_980_000), "2h 13m");
        assert_eq!(cost(0.0), "$0.00");
        assert_eq!(cost(0.001), "<$0.01");
        assert_eq!(cost(12.345), "$12.35");
        assert_eq!(started(1_773_568_805_000), "2026-03-15 10:00:05");
        assert_eq!(plural(1, "event", "events"), "1 event");
        assert_eq!(plural(1_000, "event", "events"), "1,000 events");
    }

    #[test]
    fn lsn_ranges_read_well() {
        assert_eq!(lsn_range(0, 1, 1), "none (next 1)");
        assert_eq!(lsn_range(3, 1, 4), "1 to 3 (next 4)");
    }
}
