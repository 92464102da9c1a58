//! The docs read true against the code: every code fence is closed, every
//! relative link (and its `#anchor`) resolves, every TOML example in the
//! README and docs/configuration.md is accepted by the crate's own parser
//! and by each store's and bus's option parser, and docs/configuration.md
//! documents exactly the options the config structs take — no more, no less.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use polyrouter::config::Config;
use serde::de::{DeserializeOwned, Visitor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, every `docs/**/*.md` and every backend's `docs.md`.
fn markdown_files() -> Vec<PathBuf> {
    let mut out = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    for entry in std::fs::read_dir(root().join("src/backends")).unwrap() {
        let docs = entry.unwrap().path().join("docs.md");
        if docs.exists() {
            out.push(docs);
        }
    }
    out.sort();
    assert!(out.len() > 10, "found only {out:?}");
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A fenced code block: its info string, its text and the line it starts on.
struct Block {
    info: String,
    text: String,
    line: usize,
}

/// Splits a Markdown file into its fenced code blocks and the prose lines
/// outside them (`(line number, line)`); an unclosed fence, or a fence with
/// an info string inside a block (which does not close it), is an error.
fn split(path: &Path, text: &str) -> (Vec<Block>, Vec<(usize, String)>) {
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                    line: n,
                })
            }
            (None, None) => prose.push((n, line.to_string())),
            (Some(_), Some(rest)) if rest.trim().is_empty() => blocks.push(open.take().unwrap()),
            (Some(b), Some(_)) => panic!(
                "{}:{n}: a fence with an info string inside the block opened at line {}: \
                 that block was never closed",
                rel(path),
                b.line
            ),
            (Some(b), None) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
        }
    }
    if let Some(b) = open {
        panic!("{}:{}: code fence never closed", rel(path), b.line);
    }
    (blocks, prose)
}

#[test]
fn every_code_fence_is_closed() {
    for path in markdown_files() {
        split(&path, &read(&path));
    }
}

/// GitHub's anchor for a heading: lower case, only letters, digits, `-`,
/// `_` and spaces kept, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(path: &Path) -> BTreeSet<String> {
    let (_, prose) = split(path, &read(path));
    let mut seen = BTreeSet::new();
    for (_, line) in prose {
        if let Some(h) = line.strip_prefix('#') {
            let s = slug(h.trim_start_matches('#'));
            let mut candidate = s.clone();
            let mut n = 0;
            while seen.contains(&candidate) {
                n += 1;
                candidate = format!("{s}-{n}");
            }
            seen.insert(candidate);
        }
    }
    seen
}

/// The targets of `[text](target)` links on a line, outside inline code.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '`' => in_code = !in_code,
            ']' if !in_code && bytes.get(i + 1) == Some(&'(') => {
                if let Some(end) = bytes[i + 2..].iter().position(|c| *c == ')') {
                    out.push(bytes[i + 2..i + 2 + end].iter().collect());
                    i += 2 + end;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for path in markdown_files() {
        let (_, prose) = split(&path, &read(&path));
        for (n, line) in prose {
            for target in link_targets(&line) {
                // External links, and rustdoc's intra-doc links (a
                // backend's docs.md is its module's documentation too).
                let rust_path = target.contains("::")
                    || target.chars().all(|c| c.is_alphanumeric() || c == '_');
                if target.contains("://") || target.starts_with("mailto:") || rust_path {
                    continue;
                }
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let resolved = if file.is_empty() {
                    path.clone()
                } else {
                    path.parent().unwrap().join(file)
                };
                if !resolved.exists() {
                    broken.push(format!("{}:{n}: `{target}`: no such file", rel(&path)));
                    continue;
                }
                if let Some(anchor) = anchor
                    && resolved.extension().is_some_and(|e| e == "md")
                    && !anchors(&resolved).contains(anchor)
                {
                    broken.push(format!(
                        "{}:{n}: `{target}`: no heading with that anchor in {}",
                        rel(&path),
                        rel(&resolved)
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The store names a configuration refers to.
fn referenced_stores(doc: &toml::Table) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |v: Option<&toml::Value>| {
        if let Some(s) = v.and_then(|v| v.as_str()) {
            out.insert(s.to_string());
        }
    };
    for section in ["entities", "graphs", "timeseries"] {
        for (_, t) in doc
            .get(section)
            .and_then(|v| v.as_table())
            .into_iter()
            .flatten()
        {
            add(t.get("store"));
            add(t.get("read_from"));
            for nested in ["cache", "search"] {
                add(t.get(nested).and_then(|c| c.get("store")));
            }
            for c in t
                .get("cascade_blobs")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
            {
                add(c.get("store"));
            }
        }
    }
    for section in ["sync", "sagas"] {
        add(doc.get(section).and_then(|t| t.get("store")));
    }
    out
}

fn store_is(name: &str) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("store".into(), name.into());
    toml::Value::Table(t)
}

/// Routes, graphs and search indexes the views of an example read but the
/// example does not define (a view example shows only the view).
fn complete_views(doc: &mut toml::Table) {
    let mut entities = BTreeSet::new();
    let mut searched: Vec<(String, Vec<String>)> = Vec::new();
    let mut graphs = BTreeSet::new();
    // A view shown in part (only some branches) declares no `params`:
    // those its branches use.
    for (_, view) in doc
        .get_mut("views")
        .and_then(|v| v.as_table_mut())
        .into_iter()
        .flatten()
    {
        let view = view.as_table_mut().unwrap();
        if !view.contains_key("params") {
            let text = toml::to_string(view).unwrap();
            let params: BTreeSet<String> = text
                .split("\"$")
                .skip(1)
                .filter_map(|rest| rest.split_once('"').map(|(p, _)| p.to_string()))
                .collect();
            let params = params.into_iter().map(toml::Value::from).collect();
            view.insert("params".into(), toml::Value::Array(params));
        }
    }
    for (_, view) in doc
        .get("views")
        .and_then(|v| v.as_table())
        .into_iter()
        .flatten()
    {
        for (_, b) in view
            .get("branches")
            .and_then(|v| v.as_table())
            .into_iter()
            .flatten()
        {
            let entity = b.get("entity").and_then(|v| v.as_str()).map(str::to_string);
            entities.extend(entity.clone());
            if let (Some(e), Some(search)) = (entity, b.get("search")) {
                let filters = search.get("filter").and_then(|f| f.as_table());
                searched.push((
                    e,
                    filters
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k.clone())
                        .collect(),
                ));
            }
            if let Some(g) = b
                .get("graph")
                .and_then(|g| g.get("name"))
                .and_then(|v| v.as_str())
            {
                graphs.insert(g.to_string());
            }
        }
    }
    let table = |doc: &mut toml::Table, name: &str| -> toml::Table {
        doc.get(name)
            .and_then(|v| v.as_table())
            .cloned()
            .unwrap_or_default()
    };
    let mut routes = table(doc, "entities");
    for e in entities {
        routes.entry(e).or_insert_with(|| store_is("main"));
    }
    for (e, filters) in searched {
        let route = routes[&e].as_table_mut().unwrap();
        let filters: toml::Table = filters.into_iter().map(|f| (f, "string".into())).collect();
        route.entry("search").or_insert_with(|| {
            let mut search = toml::Table::new();
            search.insert("store".into(), "search".into());
            search.insert("fields".into(), toml::Value::Array(vec!["name".into()]));
            search.insert("filters".into(), toml::Value::Table(filters));
            toml::Value::Table(search)
        });
    }
    if !routes.is_empty() {
        doc.insert("entities".into(), toml::Value::Table(routes));
    }
    let mut declared = table(doc, "graphs");
    for g in graphs {
        declared.entry(g).or_insert_with(|| store_is("main"));
    }
    if !declared.is_empty() {
        doc.insert("graphs".into(), toml::Value::Table(declared));
    }
}

/// A TOML example made whole: what its views read is defined (see
/// [`complete_views`]), a store it names but does not define becomes a
/// memory store, a store table without a `kind` (a `resilience` table
/// shown alone) gets `kind = "memory"`.
fn completed(example: &str) -> String {
    let mut doc: toml::Table = toml::from_str(example).unwrap();
    complete_views(&mut doc);
    complete_sync(&mut doc);
    let missing: Vec<String> = {
        let defined = doc.get("stores").and_then(|v| v.as_table());
        referenced_stores(&doc)
            .into_iter()
            .filter(|s| defined.is_none_or(|d| !d.contains_key(s)))
            .collect()
    };
    let stores = doc
        .entry("stores")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .unwrap();
    for name in missing {
        stores.insert(name, toml::Value::Table(toml::Table::new()));
    }
    for (_, store) in stores.iter_mut() {
        let store = store.as_table_mut().unwrap();
        store.entry("kind").or_insert_with(|| "memory".into());
    }
    if stores.is_empty() {
        doc.remove("stores");
    }
    toml::to_string(&doc).unwrap()
}

/// A bus an entity's `outbox` or a projection names but the example does
/// not define becomes a memory bus; projections without `[sync]` get one
/// on their entity's store.
fn complete_sync(doc: &mut toml::Table) {
    let mut buses = BTreeSet::new();
    let mut sync_store = None;
    if let Some(entities) = doc.get("entities").and_then(|v| v.as_table()) {
        for (_, e) in entities {
            if let Some(b) = ["outbox", "change_capture"]
                .iter()
                .find_map(|o| e.get(*o))
                .and_then(|o| o.get("bus"))
                .and_then(|b| b.as_str())
            {
                buses.insert(b.to_string());
                sync_store = sync_store
                    .or_else(|| e.get("store").and_then(|s| s.as_str()).map(String::from));
            }
        }
    }
    let projections = doc.get("projections").and_then(|v| v.as_table()).cloned();
    for (_, p) in projections.iter().flatten() {
        if let Some(b) = p.get("bus").and_then(|b| b.as_str()) {
            buses.insert(b.to_string());
        }
    }
    if !buses.is_empty() {
        let defined = doc
            .entry("buses")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap();
        for b in buses {
            defined.entry(b).or_insert_with(|| {
                let mut t = toml::Table::new();
                t.insert("kind".into(), "memory".into());
                toml::Value::Table(t)
            });
        }
    }
    if projections.is_some_and(|p| !p.is_empty()) && !doc.contains_key("sync") {
        let store = sync_store.unwrap_or_else(|| "main".into());
        doc.insert("sync".into(), store_is(&store));
    }
}

/// Values for the variables the examples use without a default.
fn example_env(var: &str) -> Option<String> {
    Some(match var {
        "AZURE_STORAGE_CONNECTION_STRING" => format!(
            "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};BlobEndpoint=http://127.0.0.1:10000/{}",
            "devstoreaccount1", "a2V5", "devstoreaccount1"
        ),
        "COSMOS_CONNECTION_STRING" => {
            "AccountEndpoint=https://127.0.0.1:8081/;AccountKey=a2V5;".into()
        }
        _ => "example".into(),
    })
}

/// Parses one store's options with its kind's option type, when that
/// kind's feature is compiled in.
fn check_store_options(spec: &polyrouter::config::StoreSpec) -> polyrouter::Result<()> {
    #[allow(unused_imports)]
    use polyrouter::backends;
    match spec.kind.as_str() {
        "memory" => {
            assert!(spec.options.is_empty(), "memory takes no options");
            Ok(())
        }
        #[cfg(feature = "sqlite")]
        "sqlite" => spec.parse::<backends::sqlite::SqliteConfig>().map(drop),
        #[cfg(feature = "postgres")]
        "postgres" => spec.parse::<backends::postgres::PostgresConfig>().map(drop),
        #[cfg(feature = "mysql")]
        "mysql" => spec.parse::<backends::mysql::MySqlConfig>().map(drop),
        #[cfg(feature = "sqlserver")]
        "sqlserver" => spec
            .parse::<backends::sqlserver::SqlServerConfig>()
            .map(drop),
        #[cfg(feature = "redis")]
        "redis" => spec.parse::<backends::redis::RedisConfig>().map(drop),
        #[cfg(feature = "gremlin")]
        "gremlin" => spec.parse::<backends::gremlin::GremlinConfig>().map(drop),
        #[cfg(feature = "fs")]
        "fs" => spec.parse::<backends::fs::FsConfig>().map(drop),
        #[cfg(feature = "azblob")]
        "azblob" => spec.parse::<backends::azblob::AzBlobConfig>().map(drop),
        #[cfg(feature = "cosmos")]
        "cosmos" => spec.parse::<backends::cosmos::CosmosConfig>().map(drop),
        #[cfg(feature = "tantivy")]
        "tantivy" => spec.parse::<backends::tantivy::TantivyConfig>().map(drop),
        _ => Ok(()),
    }
}

fn check_bus_options(spec: &polyrouter::config::BusSpec) -> polyrouter::Result<()> {
    match spec.kind.as_str() {
        #[cfg(feature = "nats")]
        "nats" => spec.parse::<polyrouter::sync::nats::NatsConfig>().map(drop),
        #[cfg(feature = "redis")]
        "redis-streams" => spec
            .parse::<polyrouter::sync::redis_streams::RedisStreamsConfig>()
            .map(drop),
        _ => Ok(()),
    }
}

#[test]
fn every_toml_example_parses() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in ["README.md", "docs/configuration.md"] {
        let path = root().join(file);
        let (blocks, _) = split(&path, &read(&path));
        for b in blocks.iter().filter(|b| b.info == "toml") {
            // The outline of a file's tables, with NAME placeholders.
            if b.text.contains(".NAME]") {
                continue;
            }
            let text = completed(&b.text);
            let outcome = Config::parse_with_env(&text, file, &example_env).and_then(|cfg| {
                for spec in cfg.stores.values() {
                    check_store_options(spec)?;
                }
                for spec in cfg.buses.values() {
                    check_bus_options(spec)?;
                }
                Ok(())
            });
            match outcome {
                Ok(()) => checked += 1,
                Err(e) => failures.push(format!("{file}:{}: {e}\n{}", b.line, b.text)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "examples refused:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 15, "only {checked} examples checked");
}

/// The names of a struct's fields as serde spells them (what a TOML table
/// of that type may hold), read from its `Deserialize` impl.
fn fields<T: DeserializeOwned>() -> Vec<&'static str> {
    #[derive(Debug)]
    struct Fields(Vec<&'static str>);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Fields(Vec::new())
        }
    }
    struct Capture;
    impl<'de> serde::Deserializer<'de> for Capture {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(Vec::new()))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields.to_vec()))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let found = match T::deserialize(Capture) {
        Err(Fields(f)) => f,
        Ok(_) => Vec::new(),
    };
    assert!(
        !found.is_empty(),
        "{} is not a plain struct",
        std::any::type_name::<T>()
    );
    found
}

/// The text under the `n`-th heading (from 0) that is exactly `heading`,
/// up to the next heading of any level.
fn section(doc: &str, heading: &str, n: usize) -> String {
    let lines: Vec<&str> = doc.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_end() == heading)
        .map(|(i, _)| i)
        .collect();
    let start = *starts
        .get(n)
        .unwrap_or_else(|| panic!("docs/configuration.md has no heading `{heading}` #{n}"));
    let (_, prose) = split(Path::new("docs/configuration.md"), doc);
    let headings: BTreeSet<usize> = prose
        .iter()
        .filter(|(_, l)| l.starts_with('#'))
        .map(|(n, _)| n - 1)
        .collect();
    let end = headings
        .range(start + 1..)
        .next()
        .copied()
        .unwrap_or(lines.len());
    lines[start..end].join("\n")
}

/// The first cells of the section's tables that are one `code` span, in
/// order.
fn table_rows(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(k, _)| k.to_string()))
        .collect()
}

fn table_keys(section: &str) -> BTreeSet<String> {
    table_rows(section).into_iter().collect()
}

/// `fields` are all documented in `section`'s option table (under
/// `prefix`), and the table has no row that is not one of them.
fn check_table(
    what: &str,
    section: &str,
    prefix: &str,
    fields: &[&str],
    problems: &mut Vec<String>,
) {
    let rows = table_rows(section);
    let documented: BTreeSet<String> = rows.iter().cloned().collect();
    for (i, row) in rows.iter().enumerate() {
        if rows[..i].contains(row) {
            problems.push(format!("{what}: option `{row}` has two rows"));
        }
    }
    let expected: BTreeSet<String> = fields.iter().map(|f| format!("{prefix}{f}")).collect();
    for f in expected.difference(&documented) {
        problems.push(format!("{what}: option `{f}` is not in its table"));
    }
    for f in documented.difference(&expected) {
        if f.starts_with(prefix) {
            problems.push(format!(
                "{what}: the table documents `{f}`, which the code does not take"
            ));
        }
    }
}

#[test]
fn configuration_md_documents_exactly_the_options() {
    use polyrouter::config::*;
    let doc = read(&root().join("docs/configuration.md"));
    let mut problems = Vec::new();
    let mut table = |what: &str, heading: &str, n: usize, prefix: &str, f: Vec<&str>| {
        check_table(what, &section(&doc, heading, n), prefix, &f, &mut problems)
    };
    table(
        "[router]",
        "## `[router]`",
        0,
        "",
        fields::<RouterSettings>(),
    );
    table(
        "[entities.NAME]",
        "## `[entities.NAME]`",
        0,
        "",
        fields::<EntityConfig>(),
    );
    table("cache", "### Cache", 0, "", fields::<CacheConfig>());
    table("outbox", "### `outbox`", 0, "", fields::<OutboxConfig>());
    table(
        "change_capture",
        "### `change_capture`",
        0,
        "",
        fields::<ChangeCaptureConfig>(),
    );
    table("[sync]", "## `[sync]`", 0, "", fields::<SyncConfig>());
    table(
        "[projections.NAME]",
        "## `[projections.NAME]`",
        0,
        "",
        fields::<ProjectionConfig>(),
    );
    table("search", "### `search`", 0, "", fields::<SearchConfig>());
    table(
        "[migrations.NAME]",
        "## `[migrations.NAME]`",
        0,
        "",
        fields::<MigrationConfig>(),
    );
    table(
        "[graphs.NAME]",
        "## `[graphs.NAME]`",
        0,
        "",
        fields::<GraphConfig>(),
    );
    table(
        "[timeseries.NAME]",
        "## `[timeseries.NAME]`",
        0,
        "",
        fields::<TimeSeriesConfig>(),
    );
    let res = "### `[stores.NAME.resilience]`";
    let top: Vec<&str> = fields::<ResilienceConfig>()
        .into_iter()
        .filter(|f| !["timeout", "retry", "breaker", "limit"].contains(f))
        .collect();
    let resilience = section(&doc, res, 0);
    let mut nested = |prefix: &str, f: Vec<&str>| {
        let expected: Vec<String> = f.iter().map(|f| format!("{prefix}{f}")).collect();
        let documented = table_keys(&resilience);
        for e in &expected {
            if !documented.contains(e) {
                problems.push(format!("resilience: option `{e}` is not in its table"));
            }
        }
        for d in documented.iter().filter(|d| d.starts_with(prefix)) {
            if !expected.contains(d) {
                problems.push(format!(
                    "resilience: the table documents `{d}`, which the code does not take"
                ));
            }
        }
    };
    nested("timeout.", fields::<TimeoutConfig>());
    nested("retry.", fields::<RetryConfig>());
    nested("breaker.", fields::<BreakerConfig>());
    nested("limit.", fields::<LimitConfig>());
    let documented = table_keys(&resilience);
    for f in top {
        if !documented.contains(f) {
            problems.push(format!("resilience: option `{f}` is not in its table"));
        }
    }
    // Views are documented by example and prose: every field must appear.
    let views = section(&doc, "## `[views.NAME]`", 0);
    for (what, f) in [
        ("view", fields::<ViewConfig>()),
        ("view branch", fields::<ViewBranch>()),
        ("view search", fields::<ViewSearch>()),
        ("view graph", fields::<ViewGraph>()),
        ("view join", fields::<JoinConfig>()),
    ] {
        for f in f {
            if !views.contains(&format!("`{f}`")) && !views.contains(&format!("{f} =")) {
                problems.push(format!(
                    "{what}: `{f}` is not documented under [views.NAME]"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md:\n{}",
        problems.join("\n")
    );
}

/// Every store and bus kind's option table against its option type (only
/// for the kinds compiled in; CI builds them all).
#[test]
fn configuration_md_documents_every_kinds_options() {
    #[allow(unused_imports)]
    use polyrouter::{backends, sync};
    let doc = read(&root().join("docs/configuration.md"));
    #[allow(unused_mut)]
    let mut problems: Vec<String> = Vec::new();
    #[allow(unused_mut, unused_variables)]
    let mut store = |kind: &str, f: Vec<&str>| {
        let s = section(&doc, &format!("### `kind = \"{kind}\"`"), 0);
        check_table(&format!("stores kind {kind}"), &s, "", &f, &mut problems)
    };
    #[cfg(feature = "sqlite")]
    store("sqlite", fields::<backends::sqlite::SqliteConfig>());
    #[cfg(feature = "postgres")]
    store("postgres", fields::<backends::postgres::PostgresConfig>());
    #[cfg(feature = "mysql")]
    store("mysql", fields::<backends::mysql::MySqlConfig>());
    #[cfg(feature = "sqlserver")]
    store(
        "sqlserver",
        fields::<backends::sqlserver::SqlServerConfig>(),
    );
    #[cfg(feature = "redis")]
    store("redis", fields::<backends::redis::RedisConfig>());
    #[cfg(feature = "gremlin")]
    store("gremlin", fields::<backends::gremlin::GremlinConfig>());
    #[cfg(feature = "fs")]
    store("fs", fields::<backends::fs::FsConfig>());
    #[cfg(feature = "azblob")]
    store("azblob", fields::<backends::azblob::AzBlobConfig>());
    #[cfg(feature = "cosmos")]
    store("cosmos", fields::<backends::cosmos::CosmosConfig>());
    #[cfg(feature = "tantivy")]
    store("tantivy", fields::<backends::tantivy::TantivyConfig>());
    // Bus kinds come after the store kinds of the same name.
    #[allow(unused_variables)]
    let bus = |kind: &str| section(&doc, &format!("### `kind = \"{kind}\"`"), 0);
    #[cfg(feature = "nats")]
    check_table(
        "buses kind nats",
        &bus("nats"),
        "",
        &fields::<sync::nats::NatsConfig>(),
        &mut problems,
    );
    #[cfg(feature = "redis")]
    check_table(
        "buses kind redis-streams",
        &bus("redis-streams"),
        "",
        &fields::<sync::redis_streams::RedisStreamsConfig>(),
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "docs/configuration.md:\n{}",
        problems.join("\n")
    );
}

/// One place per fact: the option tables live in docs/configuration.md
/// only; a backend's `docs.md` explains behaviour and points there.
#[test]
fn backend_docs_hold_no_option_table() {
    for path in markdown_files() {
        if rel(&path) == "docs/configuration.md" {
            continue;
        }
        let text = read(&path);
        let header = text.lines().enumerate().find(|(_, l)| {
            let l = l.to_lowercase();
            (l.starts_with("| key |") || l.starts_with("| option |")) && l.contains("default")
        });
        assert!(
            header.is_none(),
            "{}:{}: an option table; options are documented in docs/configuration.md only — link there",
            rel(&path),
            header.unwrap().0 + 1
        );
    }
}

#[test]
fn the_checks_can_fail() {
    let dir = std::env::temp_dir().join(format!("polyrouter-docs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let md = dir.join("x.md");
    std::fs::write(
        &md,
        "# Title\n\n```toml\na = 1\n\n## Later\n```toml\nb = 2\n```\n",
    )
    .unwrap();
    let text = read(&md);
    let unclosed = std::panic::catch_unwind(|| split(&md, &text));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        unclosed.is_err(),
        "an info-string fence inside a block is an unclosed block"
    );
    assert_eq!(slug("`kind = \"memory\"`"), "kind--memory");
    assert_eq!(slug("`[stores.NAME.resilience]`"), "storesnameresilience");
    assert_eq!(
        link_targets("see [a](b.md#c) and `[x](y)`"),
        vec!["b.md#c".to_string()]
    );
    let mut problems = Vec::new();
    check_table(
        "t",
        "| `a` | x |\n| `c` | y |\n| `a` | z |",
        "",
        &["a", "b"],
        &mut problems,
    );
    assert_eq!(
        problems.len(),
        3,
        "missing, unknown and repeated rows: {problems:?}"
    );
    let doc: toml::Table = toml::from_str(&completed("[entities.u]\nstore = \"main\"\n")).unwrap();
    assert_eq!(doc["stores"]["main"]["kind"].as_str(), Some("memory"));
}
