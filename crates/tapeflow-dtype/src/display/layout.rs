//! Array layout (numpy's `_formatArray`): nested brackets, line wrapping and summarisation
//! of long axes with `...`.

use super::{EDGE_ITEMS, LINE_WIDTH};

/// Row-major strides (in elements) of `dims`; saturating so that absurd shapes cannot overflow.
pub(super) fn row_major_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1].saturating_mul(dims[k + 1]);
    }
    strides
}

/// Indices kept along an axis of length `len`: all of them, or the edges when summarising.
fn axis_items(len: usize, summarise: bool) -> Vec<usize> {
    if summarise && len > 2 * EDGE_ITEMS {
        (0..EDGE_ITEMS).chain(len - EDGE_ITEMS..len).collect()
    } else {
        (0..len).collect()
    }
}

/// Flat offsets of the elements numpy keeps for sizing columns (its `_leading_trailing`).
pub(super) fn shown_offsets(dims: &[usize], summarise: bool) -> Vec<usize> {
    let strides = row_major_strides(dims);
    let mut offsets = vec![0usize];
    for (&len, &stride) in dims.iter().zip(&strides) {
        let items = axis_items(len, summarise);
        offsets = offsets.iter().flat_map(|&base| items.iter().map(move |&i| base + i * stride)).collect();
    }
    offsets
}

// ---------------------------------------------------------------------------------------------
// Layout: brackets, separators, wrapping and summarisation (numpy's `_formatArray`).
// ---------------------------------------------------------------------------------------------

/// Shape information needed to lay out nested brackets.
pub(super) struct Layout<'a> {
    /// Shape of the array being printed (at least one axis, no zero-length axis).
    pub(super) dims: &'a [usize],
    /// Row-major strides matching `dims`.
    pub(super) strides: Vec<usize>,
    /// Whether long axes are shortened to their edges around `...`.
    pub(super) summarise: bool,
}

impl Layout<'_> {
    /// Renders the whole array; `elem` formats the element at a flat offset.
    pub(super) fn render(&self, elem: &dyn Fn(usize) -> String) -> String {
        // The hanging indent is one space: it lines continuation rows up past the first `[`.
        self.block(elem, 0, 0, " ", LINE_WIDTH)
    }

    /// Renders the sub-array starting at `offset` along `axis`. `hanging` is the indent of
    /// continuation lines and `width` the room left before the closing brackets.
    fn block(&self, elem: &dyn Fn(usize) -> String, axis: usize, offset: usize, hanging: &str, width: isize) -> String {
        let len = self.dims.get(axis).copied().unwrap_or(0);
        let stride = self.strides.get(axis).copied().unwrap_or(1);
        let show_summary = self.summarise && len > 2 * EDGE_ITEMS;
        // `None` marks the "..." placeholder between the leading and trailing edges.
        let items: Vec<Option<usize>> = if show_summary {
            (0..EDGE_ITEMS).map(Some).chain(std::iter::once(None)).chain((len - EDGE_ITEMS..len).map(Some)).collect()
        } else {
            (0..len).map(Some).collect()
        };
        let axes_left = self.dims.len() - axis;

        let mut s = String::new();
        if axes_left <= 1 {
            // Innermost axis: words separated by spaces, wrapped when a line gets too long.
            // One column is reserved for the closing `]` (or the separator, which is blank).
            let elem_width = width - 1;
            let mut line = hanging.to_string();
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    line.push(' ');
                }
                let word = match item {
                    Some(i) => elem(offset + i * stride),
                    None => "...".to_string(),
                };
                extend_line(&mut s, &mut line, &word, elem_width, hanging);
            }
            s.push_str(&line);
        } else {
            // Outer axes: one sub-block per line, with an extra blank line per extra axis.
            let next_hanging = format!("{hanging} ");
            let line_sep = "\n".repeat(axes_left - 1);
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    s.push_str(&line_sep);
                }
                s.push_str(hanging);
                match item {
                    Some(i) => s.push_str(&self.block(elem, axis + 1, offset + i * stride, &next_hanging, width - 1)),
                    None => s.push_str("..."),
                }
            }
        }
        // The first line carries the hanging indent too; the opening `[` takes its place.
        format!("[{}]", s.get(hanging.len()..).unwrap_or(""))
    }
}

/// Appends `word` to `line`, first flushing `line` into `s` if the word would pass `width`;
/// numpy never wraps a line that holds nothing but the indent, since that would not help.
fn extend_line(s: &mut String, line: &mut String, word: &str, width: isize, hanging: &str) {
    let too_long = isize::try_from(line.len() + word.len()).map_or(true, |n| n > width);
    if too_long && line.len() > hanging.len() {
        s.push_str(line.trim_end());
        s.push('\n');
        line.clear();
        line.push_str(hanging);
    }
    line.push_str(word);
}
