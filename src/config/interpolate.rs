//! `${VAR}` and `${VAR:-default}` in TOML basic strings.
//!
//! Substitution happens only inside double-quoted strings, and the value is
//! escaped for that context, so an environment variable can never inject
//! TOML. `$${` writes a literal `${`. Line numbers are preserved.

/// Where a missing variable was referenced.
#[derive(Debug, PartialEq)]
pub(crate) struct Missing {
    pub var: String,
    pub line: usize,
    pub column: usize,
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

/// Replaces variables using `lookup`.
pub(crate) fn interpolate(
    src: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Missing> {
    let mut out = String::with_capacity(src.len());
    let mut state = State::Normal;
    let (mut line, mut col) = (1usize, 1usize);
    let mut it = src.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let rest = &src[i..];
        let mut advance = |c: char| {
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        };
        match state {
            State::Normal => {
                if rest.starts_with("\"\"\"") {
                    state = State::MlBasic;
                    out.push_str("\"\"\"");
                    it.next();
                    it.next();
                    col += 3;
                    continue;
                } else if rest.starts_with("'''") {
                    state = State::MlLiteral;
                    out.push_str("'''");
                    it.next();
                    it.next();
                    col += 3;
                    continue;
                } else if c == '"' {
                    state = State::Basic;
                } else if c == '\'' {
                    state = State::Literal;
                } else if c == '#' {
                    state = State::Comment;
                }
                out.push(c);
                advance(c);
            }
            State::Comment => {
                if c == '\n' {
                    state = State::Normal;
                }
                out.push(c);
                advance(c);
            }
            State::Literal => {
                if c == '\'' || c == '\n' {
                    state = State::Normal;
                }
                out.push(c);
                advance(c);
            }
            State::MlLiteral => {
                if rest.starts_with("'''") {
                    state = State::Normal;
                    out.push_str("'''");
                    it.next();
                    it.next();
                    col += 3;
                    continue;
                }
                out.push(c);
                advance(c);
            }
            State::Basic | State::MlBasic => {
                if c == '\\' {
                    out.push(c);
                    advance(c);
                    if let Some((_, n)) = it.next() {
                        out.push(n);
                        advance(n);
                    }
                    continue;
                }
                if state == State::Basic && (c == '"' || c == '\n') {
                    state = State::Normal;
                } else if state == State::MlBasic && rest.starts_with("\"\"\"") {
                    state = State::Normal;
                    out.push_str("\"\"\"");
                    it.next();
                    it.next();
                    col += 3;
                    continue;
                } else if rest.starts_with("$${") {
                    out.push_str("${");
                    it.next();
                    it.next();
                    col += 3;
                    continue;
                } else if rest.starts_with("${") {
                    if let Some(end) = rest.find('}') {
                        let expr = &rest[2..end];
                        let (var, default) = match expr.find(":-") {
                            Some(p) => (&expr[..p], Some(&expr[p + 2..])),
                            None => (expr, None),
                        };
                        let value = lookup(var)
                            .filter(|v| !(v.is_empty() && default.is_some()))
                            .or_else(|| default.map(str::to_string));
                        match value {
                            Some(v) => escape_into(&mut out, &v),
                            None => {
                                return Err(Missing {
                                    var: var.to_string(),
                                    line,
                                    column: col,
                                });
                            }
                        }
                        for _ in 0..rest[..end].chars().count() {
                            it.next();
                        }
                        col += rest[..=end].chars().count();
                        continue;
                    }
                }
                out.push(c);
                advance(c);
            }
        }
    }
    Ok(out)
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
            Missing {
                var: "NOPE".into(),
                line: 2,
                column: 7
            }
        );
    }
}
