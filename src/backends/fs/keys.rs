//! Blob keys → relative paths under the root, refusing any key that could
//! leave it.

use std::path::PathBuf;

use crate::store::blob::check_key;
use crate::{Error, Result};

/// The directory under the root that holds metadata sidecars and temp files;
/// no key may start with it.
pub(super) const RESERVED: &str = ".polyrouter";

/// The relative path of a key: its `/`-separated segments. Refused with
/// `InvalidInput`: empty segments (leading, trailing or doubled `/`), `.`
/// and `..`, backslashes, NUL, segments over 255 bytes, and the reserved
/// first segment `.polyrouter`.
pub(super) fn key_path(store: &str, key: &str) -> Result<PathBuf> {
    check_key(store, key)?;
    let refuse = |why: &str| {
        Err(Error::invalid_input(
            store,
            "",
            format!(
                "blob key {key:?} is not allowed in an `fs` store: {why}; use a relative key of `/`-separated names"
            ),
        ))
    };
    if key.contains('\\') {
        return refuse("it contains a backslash");
    }
    let mut path = PathBuf::new();
    for (i, seg) in key.split('/').enumerate() {
        match seg {
            "" => {
                return refuse("it has an empty path segment (a leading, trailing or doubled `/`)");
            }
            "." | ".." => {
                return refuse("it has a `.` or `..` segment, which could leave the store's root");
            }
            s if s.len() > 255 => return refuse("a segment is longer than 255 bytes"),
            s if i == 0 && s == RESERVED => {
                return refuse("`.polyrouter/` is reserved for the store's own files");
            }
            s => path.push(s),
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keys_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/",
            ".",
            "a/./b",
            "a\\b",
            "..\\x",
            "a\0b",
            "",
            ".polyrouter/meta/x",
        ] {
            let e = key_path("s", bad).unwrap_err();
            assert!(matches!(e, Error::InvalidInput { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("store `s`"), "{e}");
        }
        assert_eq!(
            key_path("s", "a/b c/ü.png").unwrap(),
            PathBuf::from("a/b c/ü.png")
        );
        assert_eq!(key_path("s", "..a/b..").unwrap(), PathBuf::from("..a/b.."));
    }
}
