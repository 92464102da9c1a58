//! `polyrouter advise`: the labelled scenarios, the snippets, the review.

use std::collections::BTreeMap;

use polyrouter::advisor::{Advisor, Measurement, Platform, Role, Severity, Workload, Workloads};
use polyrouter::config::Config;
use serde::Deserialize;

/// The agreement docs/advisor.md reports: decisions where the advisor's top
/// kind is one the scenario accepts, out of all labelled decisions. The
/// test fails if the rules drop below it.
const REPORTED_AGREEMENT: (usize, usize) = (62, 62);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    #[allow(dead_code)]
    source: String,
    platform: Platform,
    expect: Vec<String>,
    expect_search: Option<Vec<String>>,
    expect_cache: Option<Vec<String>>,
    workload: Workload,
}

#[derive(Deserialize)]
struct Scenarios {
    scenario: Vec<Scenario>,
}

fn scenarios() -> Vec<Scenario> {
    let text = include_str!("advisor/scenarios.toml");
    toml::from_str::<Scenarios>(text).unwrap().scenario
}

fn workloads(s: &Scenario) -> Workloads {
    Workloads {
        platform: s.platform,
        entities: BTreeMap::from([(entity_name(&s.name), s.workload.clone())]),
    }
}

fn entity_name(scenario: &str) -> String {
    scenario
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .replace([' ', '-'], "_")
}

/// Each decision: (scenario, role, accepted kinds, the advisor's answer).
fn decisions() -> Vec<(String, &'static str, Vec<String>, Option<String>)> {
    let advisor = Advisor::builtin();
    let mut out = Vec::new();
    for s in scenarios() {
        let advice = advisor.advise(&workloads(&s), &[]);
        let e = &advice.entities[0];
        let primary = e.rankings[0].top().map(|c| c.kind.clone());
        out.push((
            s.name.clone(),
            e.rankings[0].role.name(),
            s.expect.clone(),
            primary,
        ));
        if let Some(expect) = &s.expect_search {
            out.push((
                s.name.clone(),
                "search",
                expect.clone(),
                e.top(Role::Search).map(str::to_string),
            ));
        }
        if let Some(expect) = &s.expect_cache {
            let got = e.top(Role::Cache).map(str::to_string);
            // An empty list: no cache expected.
            let got = if expect.is_empty() {
                got.or(Some(String::new()))
            } else {
                got
            };
            let expect = if expect.is_empty() {
                vec![String::new()]
            } else {
                expect.clone()
            };
            out.push((s.name.clone(), "cache", expect, got));
        }
    }
    out
}

#[test]
fn there_are_at_least_thirty_scenarios_with_the_architecture_documents_use_cases() {
    let all = scenarios();
    assert!(all.len() >= 30, "{} scenarios", all.len());
    for prefix in ["e-commerce:", "social:", "iot:"] {
        let n = all.iter().filter(|s| s.name.starts_with(prefix)).count();
        assert!(n >= 5, "only {n} `{prefix}` scenarios");
    }
}

#[test]
fn the_rules_agree_with_the_labelled_scenarios_at_least_as_reported() {
    let all = decisions();
    let mut agree = 0;
    let mut misses = Vec::new();
    for (name, role, expect, got) in &all {
        match got {
            Some(g) if expect.contains(g) => agree += 1,
            _ => misses.push(format!(
                "{name} [{role}]: expected one of {expect:?}, got {got:?}"
            )),
        }
    }
    println!("agreement: {agree} of {} decisions", all.len());
    for m in &misses {
        println!("  disagrees: {m}");
    }
    let (reported, total) = REPORTED_AGREEMENT;
    assert_eq!(
        all.len(),
        total,
        "the number of labelled decisions changed: update docs/advisor.md"
    );
    assert!(
        agree >= reported,
        "agreement fell to {agree} of {total} (docs/advisor.md reports {reported}):\n{}",
        misses.join("\n")
    );
}

#[test]
fn every_candidate_reports_what_it_has_and_lacks_from_the_real_capabilities() {
    let advisor = Advisor::builtin();
    let w = Workloads::parse(
        "[entities.order]\naccess = [\"point\", \"range\"]\ntransactions = true\n",
        "w.toml",
    )
    .unwrap();
    let advice = advisor.advise(&w, &[]);
    let ranking = &advice.entities[0].rankings[0];
    assert_eq!(ranking.candidates.len(), polyrouter::backends::KINDS.len());
    for c in &ranking.candidates {
        let caps = &polyrouter::backends::kind(&c.kind).unwrap().capabilities;
        for n in &c.satisfies {
            assert!(
                caps.names().contains(&n.capability.as_str()),
                "{} has {}",
                c.kind,
                n.capability
            );
        }
        for n in &c.lacks {
            assert!(
                !caps.names().contains(&n.capability.as_str()),
                "{} lacks {}",
                c.kind,
                n.capability
            );
        }
        assert_eq!(c.fits, c.lacks.is_empty());
    }
    let cosmos = ranking
        .candidates
        .iter()
        .find(|c| c.kind == "cosmos")
        .unwrap();
    assert!(cosmos.lacks.iter().any(|n| n.capability == "transactions"));
    // Fitting kinds come first.
    let first_unfit = ranking.candidates.iter().position(|c| !c.fits).unwrap();
    assert!(ranking.candidates[first_unfit..].iter().all(|c| !c.fits));
}

#[test]
fn an_option_dependent_capability_is_noted() {
    let w = Workloads::parse(
        "platform = \"embedded\"\n[entities.n]\naccess = [\"point\"]\nprocesses = 3\n",
        "w.toml",
    )
    .unwrap();
    let advice = Advisor::builtin().advise(&w, &[]);
    let sqlite = advice.entities[0].rankings[0]
        .candidates
        .iter()
        .find(|c| c.kind == "sqlite")
        .unwrap();
    assert!(
        sqlite.depends.iter().any(|d| d.starts_with("shared:")),
        "{:?}",
        sqlite.depends
    );
    assert!(advice.to_string().contains("note: shared:"));
}

/// Values for the `${VAR}`s a snippet leaves to the environment.
fn env_for(dir: &std::path::Path) -> impl Fn(&str) -> Option<String> + '_ {
    move |var: &str| match var {
        "DATABASE_URL" => Some(format!("sqlite://{}/app.db", dir.display())),
        "BLOB_DIR" => Some(format!("{}/blobs", dir.display())),
        "INDEX_DIR" => Some(format!("{}/index", dir.display())),
        _ => Some("set-by-the-test".into()),
    }
}

#[test]
fn every_scenarios_snippet_parses_as_a_configuration() {
    let advisor = Advisor::builtin();
    let dir = tempfile::tempdir().unwrap();
    for s in scenarios() {
        let snippet = advisor.advise(&workloads(&s), &[]).snippet();
        Config::parse_with_env(&snippet, "snippet.toml", &env_for(dir.path()))
            .unwrap_or_else(|e| panic!("{}: {e}\n{snippet}", s.name));
    }
}

#[test]
fn the_whole_architecture_document_allocation_is_one_snippet() {
    let text: String = scenarios()
        .iter()
        .filter(|s| s.name.starts_with("e-commerce:"))
        .map(|s| {
            let inline = toml::to_string(&s.workload).unwrap();
            format!("[entities.{}]\n{inline}\n", entity_name(&s.name))
        })
        .collect();
    let w = Workloads::parse(&format!("platform = \"azure\"\n{text}"), "ecommerce.toml").unwrap();
    let snippet = Advisor::builtin().advise(&w, &[]).snippet();
    let cfg = Config::parse_with_env(&snippet, "snippet.toml", &|_| Some("x".into())).unwrap();
    assert_eq!(cfg.stores["cosmos"].kind, "cosmos");
    assert_eq!(cfg.entities["product_catalog"].store, "cosmos");
    assert_eq!(
        cfg.entities["product_catalog"]
            .cache
            .as_ref()
            .unwrap()
            .store,
        "redis"
    );
    assert_eq!(cfg.entities["session_state"].store, "redis");
    assert!(cfg.entities["session_state"].ttl.is_some());
}

#[tokio::test]
async fn an_embedded_snippet_opens_as_a_router() {
    // The search index of an embedded snippet is tantivy.
    let access = if cfg!(feature = "tantivy") {
        r#"["point", "range", "search"]"#
    } else {
        r#"["point", "range"]"#
    };
    let text = r#"
platform = "embedded"
[entities.note]
access = ACCESS
processes = 1
fields = ["body"]
[entities.cached]
access = ["point"]
ttl = "1m"
durable = false
consistency = "eventual"
processes = 1
[entities.follows]
access = ["graph"]
processes = 1
[entities.telemetry]
access = ["time_series"]
processes = 1
fields = ["celsius"]
ttl = "30d"
"#
    .replace("ACCESS", access);
    let w = Workloads::parse(&text, "w.toml").unwrap();
    let snippet = Advisor::builtin().advise(&w, &[]).snippet();
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse_with_env(&snippet, "snippet.toml", &env_for(dir.path())).unwrap();
    assert_eq!(cfg.entities["note"].store, "sqlite");
    if cfg!(feature = "tantivy") {
        assert_eq!(
            cfg.entities["note"].search.as_ref().unwrap().fields,
            vec!["body"]
        );
    }
    assert!(cfg.graphs.contains_key("follows"));
    assert_eq!(cfg.timeseries["telemetry"].fields, vec!["celsius"]);
    let router = polyrouter::Router::builder()
        .config(cfg)
        .build()
        .await
        .unwrap();
    assert!(router.graph("follows").is_ok());
    assert!(router.time_series("telemetry").is_ok());
}

#[test]
fn measured_latencies_move_a_kind() {
    let w = Workloads::parse(
        "platform = \"self_hosted\"\n[entities.o]\naccess = [\"point\", \"range\"]\nlatency_ms = 2\n",
        "w.toml",
    )
    .unwrap();
    let advisor = Advisor::builtin();
    let before = advisor.advise(&w, &[]);
    assert_eq!(before.entities[0].top(Role::Records), Some("postgres"));
    let slow = |store: &str, kind: &str, p99: f64| Measurement {
        store: store.into(),
        kind: kind.into(),
        operation: "read".into(),
        p99_ms: p99,
    };
    let measured = [slow("pg", "postgres", 9.0), slow("my", "mysql", 0.8)];
    let after = advisor.advise(&w, &measured);
    let top = after.entities[0].rankings[0].top().unwrap();
    assert_eq!(top.kind, "mysql");
    assert!(
        top.reasons
            .iter()
            .any(|r| r.rule == "measured" && r.text.contains("`my`"))
    );
    let pg = after.entities[0].rankings[0]
        .candidates
        .iter()
        .find(|c| c.kind == "postgres")
        .unwrap();
    assert!(
        pg.reasons
            .iter()
            .any(|r| r.rule == "measured" && r.weight < 0 && r.text.contains("over"))
    );
}

#[test]
fn a_bad_workload_file_names_the_line_and_key() {
    let e = Workloads::parse(
        "[entities.a]\nconsistency = \"bounded_staleness\"\n",
        "w.toml",
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("w.toml:1:"), "{e}");
    assert!(e.to_string().contains("entities.a.staleness"), "{e}");
    let e = Workloads::parse("[entities.a]\nttl = \"soon\"\n", "w.toml").unwrap_err();
    assert!(e.to_string().starts_with("w.toml:2:"), "{e}");
    let e = Workloads::parse("[entities.a]\naccess = [\"telepathy\"]\n", "w.toml").unwrap_err();
    assert!(e.to_string().contains("telepathy"), "{e}");
}

#[test]
fn the_review_finds_what_the_workload_needs_and_the_route_lacks() {
    let cfg = Config::parse(
        r#"
[stores.main]
kind = "sqlite"
url = "sqlite://app.db"
[stores.kv]
kind = "memory"
[stores.spare]
kind = "postgres"
url = "postgres://localhost/x"

[entities.session]
store = "kv"

[entities.user]
store = "main"
cache = { store = "kv", ttl = "10m" }
consistency = "strong"

[entities.product]
store = "main"
cache = { store = "kv", ttl = "10m" }

[entities.order]
store = "kv"
ttl = "1d"

[timeseries.telemetry]
store = "main"
fields = ["v"]
"#,
        "app.toml",
    )
    .unwrap();
    let w = Workloads::parse(
        r#"
[entities.session]
ttl = "30m"
durable = false
consistency = "eventual"
[entities.product]
access = ["point", "search"]
consistency = "eventual"
staleness = "1m"
processes = 4
[entities.order]
access = ["point", "range"]
transactions = true
[entities.invoice]
access = ["point"]
"#,
        "w.toml",
    )
    .unwrap();
    let findings = Advisor::builtin().review(&cfg, Some(&w), &[]);
    let text: Vec<String> = findings.iter().map(|f| f.to_string()).collect();
    let has = |sev: Severity, path: &str, words: &str| {
        assert!(
            findings
                .iter()
                .any(|f| f.severity == sev && f.path == path && f.message.contains(words)),
            "no {sev:?} at {path} with {words:?} in:\n{}",
            text.join("\n")
        );
    };
    has(Severity::Warning, "entities.user.cache", "never read");
    has(
        Severity::Warning,
        "entities.session.store",
        "vanish on restart",
    );
    has(Severity::Warning, "entities.session", "add `ttl = \"30m\"`");
    has(Severity::Warning, "entities.product", "no `search` index");
    has(
        Severity::Warning,
        "entities.product.cache.ttl",
        "staleness bound",
    );
    has(
        Severity::Warning,
        "entities.product.cache.store",
        "private to each",
    );
    has(Severity::Error, "entities.order.store", "lacks");
    has(
        Severity::Warning,
        "entities.invoice",
        "no [entities.invoice]",
    );
    has(Severity::Info, "stores.spare", "no entity");
    has(Severity::Info, "timeseries.telemetry", "retention");
    assert_eq!(findings[0].severity, Severity::Error, "errors come first");
    // Located in the file.
    let cache = findings
        .iter()
        .find(|f| f.path == "entities.user.cache")
        .unwrap();
    assert!(
        cache.location.starts_with("app.toml:16:"),
        "{}",
        cache.location
    );
}
