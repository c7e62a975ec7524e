//! Byte offsets to 1-based lines and columns, as diagnostics print them.

/// The start of every line of a text, to turn byte offsets into 1-based
/// lines and columns (in characters).
#[derive(Debug)]
pub struct LineIndex {
    /// Byte offset of each line's first byte; the first is 0.
    starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `source`'s lines.
    pub fn new(source: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// Line and column (in characters) of byte `offset` of `source`, the
    /// text the index was made from; an offset past the end counts as the end.
    pub fn line_col(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(source.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let column = source.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let src = "a = 1\n\u{e9}t\u{e9} = 2\n";
        let idx = LineIndex::new(src);
        assert_eq!(idx.line_col(src, 0), (1, 1));
        assert_eq!(idx.line_col(src, 4), (1, 5));
        assert_eq!(idx.line_col(src, 6), (2, 1));
        // After three characters of five bytes: two 2-byte ones and `t`.
        assert_eq!(idx.line_col(src, 11), (2, 4));
        assert_eq!(idx.line_col(src, 999), (3, 1));
    }
}
