//! Maps byte offsets and key paths in a TOML source to line and column.

use toml::de::{DeTable, DeValue};

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// The byte offset of the deepest key of `path` present in `src` (the key, not its value).
pub(crate) fn find_path(src: &str, path: &[&str]) -> Option<usize> {
    let doc = DeTable::parse(src).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut found = None;
    for seg in path {
        let Some((k, v)) = table.get_key_value(*seg) else {
            return found;
        };
        found = Some(k.span().start);
        match v.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return found,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys() {
        let src = "[stores.main]\nkind = \"sqlite\"\n\n[entities.user]\nstore = \"nope\"\n";
        let at = find_path(src, &["entities", "user", "store"]).unwrap();
        assert_eq!(line_col(src, at), (5, 1));
        let at = find_path(src, &["stores", "main", "kind"]).unwrap();
        assert_eq!(line_col(src, at), (2, 1));
        let at = find_path(src, &["stores", "main", "missing"]).unwrap();
        assert_eq!(line_col(src, at).0, 1);
    }
}
