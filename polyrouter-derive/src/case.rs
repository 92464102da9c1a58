//! Name conversions: the default entity name and serde's `rename_all` rules.

/// A serde `rename_all` rule, applied to field names exactly as serde does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the names are serde's
pub(crate) enum RenameRule {
    /// `"lowercase"`.
    LowerCase,
    /// `"UPPERCASE"`.
    UpperCase,
    /// `"PascalCase"`.
    PascalCase,
    /// `"camelCase"`.
    CamelCase,
    /// `"snake_case"`.
    SnakeCase,
    /// `"SCREAMING_SNAKE_CASE"`.
    ScreamingSnakeCase,
    /// `"kebab-case"`.
    KebabCase,
    /// `"SCREAMING-KEBAB-CASE"`.
    ScreamingKebabCase,
}

impl RenameRule {
    /// Parses the string serde accepts in `#[serde(rename_all = "...")]`.
    ///
    /// Returns `None` for an unknown rule (serde's own derive reports it).
    pub(crate) fn parse(rule: &str) -> Option<Self> {
        Some(match rule {
            "lowercase" => RenameRule::LowerCase,
            "UPPERCASE" => RenameRule::UpperCase,
            "PascalCase" => RenameRule::PascalCase,
            "camelCase" => RenameRule::CamelCase,
            "snake_case" => RenameRule::SnakeCase,
            "SCREAMING_SNAKE_CASE" => RenameRule::ScreamingSnakeCase,
            "kebab-case" => RenameRule::KebabCase,
            "SCREAMING-KEBAB-CASE" => RenameRule::ScreamingKebabCase,
            _ => return None,
        })
    }

    /// Renames a (snake_case) Rust field name the way serde's
    /// `RenameRule::apply_to_field` does.
    pub(crate) fn apply_to_field(self, field: &str) -> String {
        match self {
            RenameRule::LowerCase | RenameRule::SnakeCase => field.to_owned(),
            RenameRule::UpperCase | RenameRule::ScreamingSnakeCase => field.to_ascii_uppercase(),
            RenameRule::PascalCase => {
                let mut pascal = String::with_capacity(field.len());
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        pascal.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        pascal.push(ch);
                    }
                }
                pascal
            }
            RenameRule::CamelCase => {
                let pascal = RenameRule::PascalCase.apply_to_field(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    None => pascal,
                }
            }
            RenameRule::KebabCase => field.replace('_', "-"),
            RenameRule::ScreamingKebabCase => field.to_ascii_uppercase().replace('_', "-"),
        }
    }
}

/// Converts a type name to snake_case for the default entity name.
///
/// Runs of capitals are kept together as one word: `UserProfile` becomes
/// `user_profile`, `HTTPRequest` becomes `http_request`, `UserV2` becomes
/// `user_v2`.
pub(crate) fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &ch) in chars.iter().enumerate() {
        if ch.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            let boundary = prev != '_'
                && (prev.is_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_uppercase() && next_is_lower));
            if boundary {
                out.push('_');
            }
        }
        out.extend(ch.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_words_and_acronyms() {
        assert_eq!(snake_case("User"), "user");
        assert_eq!(snake_case("UserProfile"), "user_profile");
        assert_eq!(snake_case("HTTPRequest"), "http_request");
        assert_eq!(snake_case("UserV2"), "user_v2");
        assert_eq!(snake_case("Already_Snake"), "already_snake");
        assert_eq!(snake_case("ID"), "id");
    }

    #[test]
    fn rename_rules_match_serde() {
        let f = "created_at_utc";
        let r = |s| RenameRule::parse(s).unwrap().apply_to_field(f);
        assert_eq!(r("lowercase"), "created_at_utc");
        assert_eq!(r("UPPERCASE"), "CREATED_AT_UTC");
        assert_eq!(r("PascalCase"), "CreatedAtUtc");
        assert_eq!(r("camelCase"), "createdAtUtc");
        assert_eq!(r("snake_case"), "created_at_utc");
        assert_eq!(r("SCREAMING_SNAKE_CASE"), "CREATED_AT_UTC");
        assert_eq!(r("kebab-case"), "created-at-utc");
        assert_eq!(r("SCREAMING-KEBAB-CASE"), "CREATED-AT-UTC");
        assert_eq!(RenameRule::parse("Title Case"), None);
    }
}
