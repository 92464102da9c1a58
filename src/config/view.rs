//! `[views.NAME]`: declarative aggregate reads.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigDuration;

/// `[views.NAME]`: named branches over entities, run with
/// [`Router::view`](crate::Router::view).
///
/// ```
/// let cfg = polyrouter::config::Config::parse(r#"
///     [stores.m]
///     kind = "memory"
///     [entities.user]
///     store = "m"
///     [entities.order]
///     store = "m"
///     [views.dashboard]
///     params = ["user_id"]
///     timeout = "500ms"
///     [views.dashboard.branches.user]
///     entity = "user"
///     get = "$user_id"
///     required = true
///     [views.dashboard.branches.orders]
///     entity = "order"
///     filter = { customer_id = "$user_id" }
///     order_by = "-created_at"
///     limit = 10
/// "#, "<string>").unwrap();
/// assert_eq!(cfg.views["dashboard"].branches.len(), 2);
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// Parameter names the caller must pass; branches refer to them as `"$name"`.
    #[serde(default)]
    pub params: Vec<String>,
    /// Deadline of the whole view (default 30 s).
    pub timeout: Option<ConfigDuration>,
    /// The branches, by name (the names of the result's fields).
    #[serde(default)]
    pub branches: BTreeMap<String, ViewBranch>,
}

/// One branch of a view: a point read (`get`), a join (`join`), or else a
/// query (`filter`, `order_by`, `limit`).
///
/// ```
/// let b = polyrouter::config::ViewBranch { entity: "user".into(), ..Default::default() };
/// assert!(!b.required);
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ViewBranch {
    /// The entity read.
    pub entity: String,
    /// Point read of this key: `"$param"` or a literal.
    pub get: Option<toml::Value>,
    /// Equality filters, field → `"$param"` or a literal (a query branch).
    pub filter: Option<BTreeMap<String, toml::Value>>,
    /// Sort field; a leading `-` sorts descending (a query branch).
    pub order_by: Option<String>,
    /// Row limit (a query branch).
    pub limit: Option<u32>,
    /// Join: read the records referenced by another branch's field.
    pub join: Option<JoinConfig>,
    /// The view fails when this branch fails (default: partial result).
    #[serde(default)]
    pub required: bool,
    /// This branch's own deadline.
    pub deadline: Option<ConfigDuration>,
}

/// `join = { from = "orders", field = "product_id" }`.
///
/// ```
/// let j = polyrouter::config::JoinConfig { from: "orders".into(), field: "product_id".into() };
/// assert_eq!(j.from, "orders");
/// ```
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JoinConfig {
    /// The branch whose rows hold the references.
    pub from: String,
    /// The field holding the referenced key.
    pub field: String,
}

impl ViewConfig {
    /// Checks the view against the routed entities; the message and the
    /// key path (under `views.NAME`) of the first problem.
    pub(crate) fn check(
        &self,
        entities: &BTreeMap<String, super::EntityConfig>,
    ) -> Result<(), (Vec<String>, String)> {
        let at = |keys: &[&str], m: String| (keys.iter().map(|k| k.to_string()).collect(), m);
        for (name, b) in &self.branches {
            if !entities.contains_key(&b.entity) {
                return Err(at(
                    &["branches", name, "entity"],
                    format!(
                        "entity `{}` has no route; add [entities.{}]",
                        b.entity, b.entity
                    ),
                ));
            }
            let kinds = [
                b.get.is_some(),
                b.join.is_some(),
                b.filter.is_some() || b.order_by.is_some() || b.limit.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() > 1 {
                return Err(at(
                    &["branches", name],
                    "a branch is one of: `get`, `join`, or a query (`filter`/`order_by`/`limit`)"
                        .into(),
                ));
            }
            if let Some(j) = &b.join {
                if !self.branches.contains_key(&j.from) || j.from == *name {
                    return Err(at(
                        &["branches", name, "join", "from"],
                        format!("`{}` is not another branch of this view", j.from),
                    ));
                }
            }
            let mut values: Vec<(&str, &toml::Value)> = Vec::new();
            if let Some(g) = &b.get {
                values.push(("get", g));
            }
            for v in b.filter.iter().flat_map(|f| f.values()) {
                values.push(("filter", v));
            }
            for (key, v) in values {
                if let Some(p) = v.as_str().and_then(|s| s.strip_prefix('$')) {
                    if !self.params.iter().any(|x| x == p) {
                        return Err(at(
                            &["branches", name, key],
                            format!("parameter `{p}` is not declared; add it to `params`"),
                        ));
                    }
                }
            }
        }
        // Joins must not form a cycle.
        for start in self.branches.keys() {
            let mut at_branch = start;
            for _ in 0..=self.branches.len() {
                match &self.branches[at_branch].join {
                    Some(j) => at_branch = &j.from,
                    None => break,
                }
                if at_branch == start {
                    return Err(at(
                        &["branches", start, "join"],
                        "joins form a cycle".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}
