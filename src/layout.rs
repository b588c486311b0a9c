//! Text layout for a fixed width: word wrapping that never breaks a word
//! that fits, and plain tables that split into several when too wide.
//!
//! Widths are display columns (`unicode-width`), so "–", "✓" and "→" count
//! as one column each, as a terminal draws them.

use unicode_width::UnicodeWidthStr;

/// The narrowest width dualwrite lays text out for; below it, lines are
/// laid out for this width anyway (and may overflow a tiny terminal).
pub const MIN_WIDTH: usize = 40;

/// The display width of `text`.
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// Wraps `text` into lines of at most `width` columns: the first starts with
/// `first`, the others with `rest` (both count toward the width). Words are
/// kept whole; only a word wider than a whole line is cut, since it cannot
/// fit any other way.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut empty = true; // no word on `line` yet
    for word in words(text) {
        let word = word.as_str();
        // The room of the narrowest line, so that a cut piece fits any line.
        let room = width.saturating_sub(self::width(first).max(self::width(rest))).max(1);
        let needed = self::width(&line) + usize::from(!empty) + self::width(word);
        if !empty && needed > width {
            lines.push(std::mem::replace(&mut line, rest.to_string()));
            empty = true;
        }
        if self::width(word) > room {
            // A word that fits no line: cut it into line-sized pieces.
            for piece in cut(word, room) {
                let space = usize::from(!empty);
                if !empty && self::width(&line) + space + self::width(&piece) > width {
                    lines.push(std::mem::replace(&mut line, rest.to_string()));
                    empty = true;
                }
                if !empty {
                    line.push(' ');
                }
                line.push_str(&piece);
                empty = false;
            }
            continue;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    if !empty || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Units that stay on the line of the number before them: `10.0 s)` is
/// never split as `10.0` / `s)`.
const UNITS: [&str; 5] = ["s", "ms", "units", "KB/s", "%"];

/// The names of two words that read as one, kept on one line.
const PHRASES: [(&str, &str); 6] = [
    ("false", "failure"),
    ("false", "fail"),
    ("stale", "cache"),
    ("projection", "drift"),
    ("pool", "timeouts"),
    ("event", "lag"),
];

/// The words of `text`, a unit glued to the number it follows, a `·` to
/// the word before it, and the [`PHRASES`] kept whole.
fn words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let bare = word.trim_end_matches(|c: char| ")],.;:".contains(c));
        let after_number = words.last().is_some_and(|w| w.ends_with(|c: char| c.is_ascii_digit()));
        let completes_phrase = words.last().is_some_and(|w| PHRASES.iter().any(|(a, b)| w == a && bare == *b));
        // A separator ends a line rather than starting the next one.
        if (after_number && UNITS.contains(&bare)) || (word == "·" && !words.is_empty()) || completes_phrase {
            let last = words.last_mut().expect("checked");
            last.push(' ');
            last.push_str(word);
        } else {
            words.push(word.to_string());
        }
    }
    words
}

/// Cuts `word` into pieces of at most `room` columns.
fn cut(word: &str, room: usize) -> Vec<String> {
    let mut pieces = vec![String::new()];
    for c in word.chars() {
        let current = pieces.last_mut().expect("never empty");
        let mut buf = [0u8; 4];
        if !current.is_empty() && width(current) + width(c.encode_utf8(&mut buf)) > room {
            pieces.push(String::new());
        }
        pieces.last_mut().expect("never empty").push(c);
    }
    pieces
}

/// Pads `text` to `to` columns, on the right (`Align::Left`) or left.
pub fn pad(text: &str, to: usize, align: Align) -> String {
    let fill = " ".repeat(to.saturating_sub(width(text)));
    match align {
        Align::Left => format!("{text}{fill}"),
        Align::Right => format!("{fill}{text}"),
    }
}

/// Where a column's text sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One column of a [`Table`]: a header of one or more short lines (never
/// wrapped: choose words that fit), and one cell per row.
#[derive(Debug, Clone)]
pub struct Column {
    pub header: Vec<String>,
    pub align: Align,
    pub cells: Vec<String>,
}

impl Column {
    pub fn new(header: &[&str], align: Align) -> Column {
        Column { header: header.iter().map(|h| h.to_string()).collect(), align, cells: Vec::new() }
    }

    fn width(&self) -> usize {
        self.header.iter().chain(&self.cells).map(|t| width(t)).max().unwrap_or(0)
    }
}

/// A plain table: headers, a rule under each column, rows; columns two
/// spaces apart, no borders. The first `key` columns (the strategy) start
/// every part when the table must be split to fit.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<Column>,
    pub key: usize,
}

/// Space between two columns.
const GAP: &str = "  ";

impl Table {
    /// Renders the table in `width` columns, indented by `indent`. A table
    /// too wide is split into parts (each repeating the key columns) that
    /// fit, separated by a blank line.
    pub fn render(&self, width: usize, indent: &str) -> Vec<String> {
        let widths: Vec<usize> = self.columns.iter().map(Column::width).collect();
        let key: Vec<usize> = (0..self.key.min(self.columns.len())).collect();
        let key_width: usize = key.iter().map(|&i| widths[i] + GAP.len()).sum::<usize>() + self::width(indent);
        // Greedy: as many of the remaining columns as fit beside the key.
        let mut parts: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        let mut used = key_width;
        for (i, column_width) in widths.iter().enumerate().skip(key.len()) {
            let w = column_width + GAP.len();
            if !current.is_empty() && used + w - GAP.len() > width {
                parts.push(std::mem::take(&mut current));
                used = key_width;
            }
            current.push(i);
            used += w;
        }
        if !current.is_empty() || parts.is_empty() {
            parts.push(current);
        }
        let mut lines = Vec::new();
        for (n, part) in parts.iter().enumerate() {
            if n > 0 {
                lines.push(String::new());
            }
            let shown: Vec<usize> = key.iter().copied().chain(part.iter().copied()).collect();
            let header_lines = shown.iter().map(|&i| self.columns[i].header.len()).max().unwrap_or(0);
            // Headers sit on the bottom lines, next to the rule.
            for h in 0..header_lines {
                let cells = shown.iter().map(|&i| {
                    let c = &self.columns[i];
                    let skip = header_lines - c.header.len();
                    let text = if h >= skip { c.header[h - skip].as_str() } else { "" };
                    (text.to_string(), widths[i], c.align)
                });
                lines.push(join(indent, cells));
            }
            lines.push(join(indent, shown.iter().map(|&i| ("─".repeat(widths[i]), widths[i], Align::Left))));
            let rows = self.columns.first().map(|c| c.cells.len()).unwrap_or(0);
            for r in 0..rows {
                let cells = shown.iter().map(|&i| {
                    let c = &self.columns[i];
                    (c.cells.get(r).cloned().unwrap_or_default(), widths[i], c.align)
                });
                lines.push(join(indent, cells));
            }
        }
        lines
    }
}

fn join(indent: &str, cells: impl Iterator<Item = (String, usize, Align)>) -> String {
    let line = cells.map(|(text, w, align)| pad(&text, w, align)).collect::<Vec<_>>().join(GAP);
    format!("{indent}{}", line.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_whole_and_fits() {
        let text = "order 8cdf89dd (product 1, -5 units) began at 7.5 s · db: ok at 7.5 s · topic: fail at 9.8 s";
        let lines = wrap(text, 30, "  lost: ", "    ");
        for line in &lines {
            assert!(width(line) <= 30, "{line:?}");
        }
        let words: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        assert!(lines.iter().all(|l| !l.trim_start().starts_with("s ") && !l.trim_start().starts_with("units")));
        let mut expected = vec!["lost:"];
        expected.extend(text.split_whitespace());
        assert_eq!(words, expected, "every word once, none cut");
        assert!(lines[0].starts_with("  lost: order"));
        assert!(lines[1].starts_with("    ") && !lines[1].starts_with("     "));
    }

    #[test]
    fn wrap_cuts_only_a_word_wider_than_a_line() {
        let lines = wrap("a 0123456789abcdef b", 10, "", "  ");
        assert!(lines.iter().all(|l| width(l) <= 10), "{lines:?}");
        assert_eq!(lines.concat().replace(' ', ""), "a0123456789abcdefb");
    }

    #[test]
    fn a_unit_stays_with_its_number() {
        let lines = wrap("during kafka down 6.8–12.0 s) · now", 26, "", "");
        assert_eq!(lines, vec!["during kafka down", "6.8–12.0 s) · now"]);
    }

    #[test]
    fn an_anomaly_name_stays_on_one_line() {
        let lines = wrap("none: ghost, reordered, projection drift, backlog", 36, "", "");
        assert_eq!(lines, vec!["none: ghost, reordered,", "projection drift, backlog"]);
    }

    #[test]
    fn wrap_of_nothing_is_the_indent() {
        assert_eq!(wrap("", 20, "  x", "  "), vec!["  x".to_string()]);
    }

    #[test]
    fn widths_are_display_columns() {
        assert_eq!(width("inconsistent ✓"), 14);
        assert_eq!(width("3.2–4.8 s"), 9);
        assert_eq!(pad("–", 3, Align::Right), "  –");
    }

    fn sample() -> Table {
        let mut a = Column::new(&["strategy"], Align::Left);
        let mut b = Column::new(&["lost"], Align::Right);
        let mut c = Column::new(&["stale", "cache"], Align::Right);
        a.cells = vec!["naive".into(), "cache-aside".into()];
        b.cells = vec!["14".into(), "–".into()];
        c.cells = vec!["–".into(), "3".into()];
        Table { columns: vec![a, b, c], key: 1 }
    }

    #[test]
    fn a_table_that_fits_is_one_part() {
        let lines = sample().render(80, "");
        let expected = [
            "                   stale",
            "strategy     lost  cache",
            "───────────  ────  ─────",
            "naive          14      –",
            "cache-aside     –      3",
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn a_table_too_wide_splits_and_repeats_the_key() {
        let lines = sample().render(20, "");
        assert!(lines.iter().all(|l| width(l) <= 20), "{lines:#?}");
        assert_eq!(lines.iter().filter(|l| l.starts_with("naive")).count(), 2);
        assert!(lines.contains(&String::new()), "parts are separated by a blank line");
    }
}
