//! Byte offsets to line numbers, so that every error in a scenario file can
//! name its line; the parser and the checks both use it.

/// Where each line of a text starts, to turn byte offsets into line numbers
/// in O(log n) each. (Counting newlines from the start for every entry made
/// checking a 1 MB file take 34 s: quadratic.)
pub(super) struct Lines {
    /// Byte offset of the first byte of every line after the first.
    starts: Vec<usize>,
    len: usize,
}

impl Lines {
    pub(super) fn new(text: &str) -> Lines {
        let starts = text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1).collect();
        Lines { starts, len: text.len() }
    }

    /// The 1-based line of a byte offset.
    ///
    /// The toml crate attaches a span to every error it finds in a document;
    /// an error without one (not seen in practice) is reported on line 1.
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.len);
        // Lines that start at or before the offset, after the first.
        self.starts.partition_point(|&start| start <= offset) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_of_counts_from_one() {
        let lines = Lines::new("a\nb\nc");
        assert_eq!(lines.line_of(0), 1);
        assert_eq!(lines.line_of(1), 1);
        assert_eq!(lines.line_of(2), 2);
        assert_eq!(lines.line_of(4), 3);
        assert_eq!(lines.line_of(99), 3);
        assert_eq!(Lines::new("").line_of(0), 1);
    }
}
