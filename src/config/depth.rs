//! The nesting limit of a configuration file, checked on the token stream
//! before the TOML is parsed, so a hostile file gets a located error
//! instead of the parser's unlocated "recursion limit" or a deep recursion.

use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, Source, Span};

/// The deepest a key or value may sit: table header segments, dotted-key
/// segments, inline tables and arrays counted together. polyrouter's own
/// options never nest more than a handful of levels.
pub(crate) const MAX_DEPTH: u32 = 32;

/// The byte offset of the first key, inline table or array that nests
/// deeper than [`MAX_DEPTH`], if any.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let tokens = Source::new(text).lex().into_vec();
    let mut depth = Depth::default();
    let mut errors: Vec<toml_parser::ParseError> = Vec::new();
    toml_parser::parser::parse_document(&tokens, &mut depth, &mut errors);
    depth.too_deep
}

/// Tracks how deep the parser is; all counts are levels below the root.
#[derive(Default)]
struct Depth {
    /// Where keys of the current table (or inline table) start.
    base: u32,
    /// Segments of the key being read.
    key: u32,
    /// Where the value being read sits.
    value: u32,
    /// `(base, value)` of each enclosing inline table or array.
    stack: Vec<(u32, u32)>,
    too_deep: Option<usize>,
}

impl Depth {
    /// Records `span` when `depth` is over the limit; whether it is within.
    fn within(&mut self, depth: u32, span: Span) -> bool {
        if depth > MAX_DEPTH {
            self.too_deep.get_or_insert(span.start());
            return false;
        }
        true
    }
}

impl EventReceiver for Depth {
    fn std_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.stack.clear();
        self.base = 0;
        self.key = 0;
    }
    fn std_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.base = self.key;
        self.key = 0;
    }
    fn array_table_open(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.std_table_open(span, error);
    }
    fn array_table_close(&mut self, span: Span, error: &mut dyn ErrorSink) {
        self.std_table_close(span, error);
    }
    fn simple_key(
        &mut self,
        span: Span,
        _kind: Option<toml_parser::decoder::Encoding>,
        _error: &mut dyn ErrorSink,
    ) {
        self.key += 1;
        let depth = self.base + self.key;
        self.within(depth, span);
    }
    fn key_val_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.value = self.base + self.key;
        self.key = 0;
    }
    fn inline_table_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.stack.push((self.base, self.value));
        self.base = self.value;
        self.key = 0;
        self.within(self.base + 1, span)
    }
    fn inline_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        (self.base, self.value) = self.stack.pop().unwrap_or_default();
        self.key = 0;
    }
    fn array_open(&mut self, span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.stack.push((self.base, self.value));
        self.value += 1;
        self.within(self.value, span)
    }
    fn array_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        (self.base, self.value) = self.stack.pop().unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(n: usize) -> Vec<String> {
        let key = vec!["a"; n].join(".");
        vec![
            format!("[{key}]\nx = 1\n"),
            format!("[[{key}]]\nx = 1\n"),
            format!("{key} = 1\n"),
            format!("[t]\n{key} = 1\n"),
            format!("x = {}1{}\n", "{a = ".repeat(n), "}".repeat(n)),
            format!("x = {}1{}\n", "[".repeat(n), "]".repeat(n)),
            format!("x = {}1{}\n", "[{a = ".repeat(n / 2), "}]".repeat(n / 2)),
        ]
    }

    #[test]
    fn shallow_files_pass_and_deep_ones_name_their_place() {
        let ok = "[stores.m]\nkind = \"memory\"\nx = { a = [1, { b.c = [[2]] }] }\n";
        assert_eq!(too_deep(ok), None);
        for text in deep(MAX_DEPTH as usize - 2) {
            assert_eq!(too_deep(&text), None, "{text}");
        }
        for n in [MAX_DEPTH as usize + 2, 1_000, 100_000] {
            for text in deep(n) {
                let at = too_deep(&text).unwrap_or_else(|| panic!("not refused: {n}"));
                assert!(at < text.len(), "{n}");
            }
        }
    }
}
