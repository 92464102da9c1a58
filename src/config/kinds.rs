//! The kinds a `[stores.NAME]` or `[buses.NAME]` table may name: one table
//! each (`backends::KINDS`, `sync::BUS_KINDS`), looked up the same way.

/// A kind polyrouter knows, the cargo feature that builds it, and how to
/// open it when that feature is compiled in (`O`: the opening function).
///
/// ```
/// let k = polyrouter::config::KindInfo { name: "memory", feature: "memory", open: Some(()) };
/// assert_eq!(k.name, "memory");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct KindInfo<O> {
    /// The `kind` in the configuration.
    pub name: &'static str,
    /// The cargo feature that compiles it.
    pub feature: &'static str,
    /// Opens one from its spec, when the feature is compiled in.
    pub open: Option<O>,
}

/// The opener of kind `name` in `table`; otherwise what is wrong: an
/// unknown kind lists the known ones, a kind whose feature is off names
/// the feature. `what` is `store` or `bus`.
pub(crate) fn opener<O: Copy>(table: &[KindInfo<O>], what: &str, name: &str) -> Result<O, String> {
    let Some(kind) = table.iter().find(|k| k.name == name) else {
        let known: Vec<&str> = table.iter().map(|k| k.name).collect();
        return Err(format!(
            "unknown {what} kind `{name}`; known kinds: {}",
            known.join(", ")
        ));
    };
    kind.open.ok_or_else(|| {
        format!(
            "{what} kind `{name}` is not compiled in; enable the cargo feature `{}` of polyrouter",
            kind.feature
        )
    })
}
