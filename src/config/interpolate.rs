//! `${VAR}` and `${VAR:-default}` in TOML basic strings.
//!
//! Substitution happens only inside double-quoted strings, and the value is
//! escaped for that context, so an environment variable can never inject
//! TOML. `$${` writes a literal `${`. Line numbers are preserved.

/// Why interpolation stopped, and where.
#[derive(Debug, PartialEq)]
pub(crate) struct Failure {
    pub problem: Problem,
    pub line: usize,
    pub column: usize,
}

/// What is wrong with a `${…}`.
#[derive(Debug, PartialEq)]
pub(crate) enum Problem {
    /// The variable is unset and there is no default.
    Missing(String),
    /// `${` with no `}` before the end of its string or line.
    Unclosed,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Normal,
    Comment,
    Basic,
    MlBasic,
    Literal,
    MlLiteral,
}

/// 1-based line and column, moved over text as it is consumed.
struct Position {
    line: usize,
    column: usize,
}

impl Position {
    fn advance(&mut self, text: &str) {
        for c in text.chars() {
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
    }
}

/// Replaces variables using `lookup`.
///
/// Linear in the input: every byte is looked at a bounded number of times
/// (a `${` scans for its `}` only to the end of its line or string). An
/// expression never spans lines, so the output has the same lines as the
/// input and later errors keep their line numbers.
pub(crate) fn interpolate(
    src: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Failure> {
    let mut out = String::with_capacity(src.len());
    let mut state = State::Normal;
    let mut pos = Position { line: 1, column: 1 };
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        let rest = &src[i..];
        // How many bytes of the source are copied as they are.
        let mut take = c.len_utf8();
        match state {
            State::Normal => {
                if rest.starts_with("\"\"\"") {
                    state = State::MlBasic;
                    take = 3;
                } else if rest.starts_with("'''") {
                    state = State::MlLiteral;
                    take = 3;
                } else if c == '"' {
                    state = State::Basic;
                } else if c == '\'' {
                    state = State::Literal;
                } else if c == '#' {
                    state = State::Comment;
                }
            }
            State::Comment => {
                if c == '\n' {
                    state = State::Normal;
                }
            }
            State::Literal => {
                if c == '\'' || c == '\n' {
                    state = State::Normal;
                }
            }
            State::MlLiteral => {
                if rest.starts_with("'''") {
                    state = State::Normal;
                    take = 3;
                }
            }
            State::Basic | State::MlBasic => {
                let multi = state == State::MlBasic;
                if c == '\\' {
                    take += rest[1..].chars().next().map_or(0, char::len_utf8);
                } else if !multi && (c == '"' || c == '\n') {
                    state = State::Normal;
                } else if multi && rest.starts_with("\"\"\"") {
                    state = State::Normal;
                    take = 3;
                } else if rest.starts_with("$${") {
                    out.push_str("${");
                    pos.advance("$${");
                    i += 3;
                    continue;
                } else if let Some(after) = rest.strip_prefix("${") {
                    let fail = |problem| Failure {
                        problem,
                        line: pos.line,
                        column: pos.column,
                    };
                    let len =
                        expression_len(after, multi).ok_or_else(|| fail(Problem::Unclosed))?;
                    let expr = &after[..len];
                    let (var, default) = match expr.find(":-") {
                        Some(p) => (&expr[..p], Some(&expr[p + 2..])),
                        None => (expr, None),
                    };
                    let value = lookup(var)
                        .filter(|v| !(v.is_empty() && default.is_some()))
                        .or_else(|| default.map(str::to_string))
                        .ok_or_else(|| fail(Problem::Missing(var.to_string())))?;
                    escape_into(&mut out, &value);
                    let consumed = &rest[..2 + len + 1];
                    pos.advance(consumed);
                    i += consumed.len();
                    continue;
                }
            }
        }
        out.push_str(&rest[..take]);
        pos.advance(&rest[..take]);
        i += take;
    }
    Ok(out)
}

/// The byte length of the expression after `${`, up to its `}`; `None`
/// when its line or string ends first (an escaped character is skipped).
fn expression_len(rest: &str, multi: bool) -> Option<usize> {
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'}' => return Some(i),
            b'\n' | b'\r' => return None,
            b'"' if !multi || rest[i..].starts_with("\"\"\"") => return None,
            b'\\' if matches!(b.get(i + 1), Some(b'\n' | b'\r') | None) => return None,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EVIL" => Some("x\"\nkind = \"pwned".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_only_in_basic_strings_and_escapes() {
        let src = "a = \"${HOST}:${PORT:-5432}\"\nb = '${HOST}' # ${HOST}\nc = \"${EVIL}\"\nd = \"$${HOST}\"\ne = \"${EMPTY:-dflt}\"\n";
        let out = interpolate(src, &env).unwrap();
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(t["a"].as_str(), Some("db.local:5432"));
        assert_eq!(t["b"].as_str(), Some("${HOST}"));
        assert_eq!(t["c"].as_str(), Some("x\"\nkind = \"pwned"));
        assert_eq!(t["d"].as_str(), Some("${HOST}"));
        assert_eq!(t["e"].as_str(), Some("dflt"));
        assert!(!t.contains_key("kind"));
        assert_eq!(out.lines().count(), src.lines().count());
    }

    #[test]
    fn missing_variable_names_its_place() {
        let e = interpolate("a = 1\nb = \"x${NOPE}\"\n", &env).unwrap_err();
        assert_eq!(
            e,
            Failure {
                problem: Problem::Missing("NOPE".into()),
                line: 2,
                column: 7
            }
        );
    }

    #[test]
    fn an_expression_ends_with_its_line_or_string() {
        for (src, line, column) in [
            ("a = \"${NOPE:-a\n}\"\n", 1, 6),
            ("a = \"${X\"\nb = \"}\"\n", 1, 6),
            ("a = 1\nb = \"\"\"\nx ${NOPE:-a\nb}\"\"\"\n", 3, 3),
            ("a = \"\"\"${X\"\"\" }\"\n", 1, 8),
            ("a = \"${X:-\\\n}\"", 1, 6),
        ] {
            let e = interpolate(src, &env).unwrap_err();
            assert_eq!(
                e,
                Failure {
                    problem: Problem::Unclosed,
                    line,
                    column
                },
                "{src:?}"
            );
        }
    }

    #[test]
    fn multi_line_strings_keep_every_line() {
        let src = "a = \"\"\"\n${HOST} ${NOPE:-x}\n${EVIL}\"\"\"\nb = \"${NOPE:-\\\"q\\\"}\"\n";
        let out = interpolate(src, &env).unwrap();
        assert_eq!(out.lines().count(), src.lines().count());
        let t: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(t["a"].as_str(), Some("db.local x\nx\"\nkind = \"pwned"));
        assert!(t.contains_key("b"));
    }

    #[test]
    fn a_hundred_thousand_unclosed_expressions_stop_at_the_first() {
        let src = "k = \"${X\"\n".repeat(100_000);
        let e = interpolate(&src, &env).unwrap_err();
        assert_eq!((e.line, e.column), (1, 6));
        let src: String = (0..100_000)
            .map(|i| format!("k{i} = \"${{NOPE:-{i}}}\"\n"))
            .collect();
        let out = interpolate(&src, &env).unwrap();
        assert_eq!(out.lines().count(), 100_000);
        assert!(out.ends_with("k99999 = \"99999\"\n"));
    }
}
