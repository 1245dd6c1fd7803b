//! The arguments of one decoded request, without copying them.
//!
//! A decoder does not build a `Vec<Bytes>` per request. It records where each
//! argument lies (a span of the read buffer) in a vector that the connection
//! reuses, and hands out [`Args`], a borrowed view. Commands read their
//! arguments as `&[u8]` and copy only what they keep (a key or a value that
//! goes into the store).

use std::ops::Range;

/// A borrowed view of one request's arguments, command name first.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    source: &'a [u8],
    spans: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// Arguments that lie at `spans` inside `source`.
    ///
    /// # Panics
    /// [`Args::get`] panics if a span is outside `source`; decoders only build
    /// spans they have checked.
    pub fn new(source: &'a [u8], spans: &'a [Range<usize>]) -> Self {
        Args { source, spans }
    }

    /// The number of arguments, command name included.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Argument `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        self.spans.get(index).map(|span| &self.source[span.clone()])
    }

    /// All arguments in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + Clone + 'a {
        let source = self.source;
        self.spans.iter().map(move |span| &source[span.clone()])
    }

    /// The arguments from `start` on, as a new view.
    pub fn skip(&self, start: usize) -> Args<'a> {
        Args {
            source: self.source,
            spans: &self.spans[start.min(self.spans.len())..],
        }
    }

    /// The arguments copied into owned vectors (for tests and logging).
    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

impl std::fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|a| String::from_utf8_lossy(a).into_owned()))
            .finish()
    }
}
