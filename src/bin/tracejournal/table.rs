//! The sessions as an aligned table, for `sessions` and the demo.

use crate::format::{cell, cost, duration, started, thousands, tokens};
use std::io::{self, Write};
use tracejournal::SessionSummary;

/// Longest id shown in the table (a unique prefix is enough for `show`).
const TABLE_ID_CHARS: usize = 14;
/// Longest title shown in the table.
const TABLE_TITLE_CHARS: usize = 48;
/// Longest error text shown under a row.
const TABLE_ERROR_CHARS: usize = 100;

/// The sessions as an aligned table; an ended session's error text goes on
/// a line of its own under its row.
pub(crate) fn write_sessions_table(out: &mut dyn Write, list: &[SessionSummary]) -> io::Result<()> {
    if list.is_empty() {
        return writeln!(out, "no sessions");
    }
    const HEADERS: [&str; 8] = [
        "ID",
        "STARTED (UTC)",
        "STATUS",
        "DURATION",
        "TOKENS",
        "COST",
        "TOOLS",
        "TITLE",
    ];
    const RIGHT: [bool; 8] = [false, false, false, true, true, true, true, false];
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|s| {
            [
                cell(&s.id, TABLE_ID_CHARS),
                started(s.started_at),
                s.status.as_str().to_string(),
                duration(s.duration_ms),
                tokens(s.tokens),
                cost(s.cost),
                thousands(s.tool_calls),
                s.title
                    .as_deref()
                    .map_or("-".to_string(), |t| cell(t, TABLE_TITLE_CHARS)),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; 8]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i > 0 {
                s.push_str("  ");
            }
            if RIGHT[i] {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(c);
            } else if i + 1 < cells.len() {
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', pad));
            } else {
                s.push_str(c);
            }
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(&HEADERS.map(str::to_string)))?;
    // The error line starts under the STATUS column.
    let indent = widths[0] + widths[1] + 4;
    for (row, s) in rows.iter().zip(list) {
        writeln!(out, "{}", line(row))?;
        if let Some(error) = s.error.as_deref().filter(|_| s.status.is_final()) {
            writeln!(out, "{:indent$}└ {}", "", cell(error, TABLE_ERROR_CHARS))?;
        }
    }
    Ok(())
}
