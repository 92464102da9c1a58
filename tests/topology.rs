//! `polyrouter topology`: golden files for every example configuration in
//! every format, and the DOT output rendered by Graphviz.
//!
//! Regenerate the golden files after an intended change with
//! `POLYROUTER_UPDATE_GOLDEN=1 cargo test --test topology`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use polyrouter::config::Config;
use polyrouter::topology::{Format, Topology};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `examples/*.toml`, parsed with no environment (defaults only).
fn examples() -> Vec<(String, Config)> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 6, "examples: {paths:?}");
    for p in paths {
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&p).unwrap();
        let file = format!("examples/{name}.toml");
        let cfg = Config::parse_with_env(&text, &file, &|_| None)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        out.push((name, cfg));
    }
    out
}

const FORMATS: [(Format, &str); 3] = [
    (Format::Text, "txt"),
    (Format::Mermaid, "mmd"),
    (Format::Dot, "dot"),
];

#[test]
fn every_example_matches_its_golden_files() {
    let update = std::env::var_os("POLYROUTER_UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (name, cfg) in examples() {
        let t = Topology::from_config(&cfg);
        for (format, ext) in FORMATS {
            let got = t.render(format);
            let path = root().join(format!("tests/topology/{name}.{ext}"));
            if update {
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; create it with POLYROUTER_UPDATE_GOLDEN=1",
                    path.display()
                )
            });
            if got != want {
                stale.push(format!(
                    "{}:\n--- want\n{want}\n--- got\n{got}",
                    path.display()
                ));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "topology output changed (POLYROUTER_UPDATE_GOLDEN=1 to accept):\n{}",
        stale.join("\n")
    );
}

#[test]
fn every_examples_dot_output_renders_with_graphviz() {
    let dot = Command::new("dot").arg("-V").output();
    assert!(
        dot.is_ok_and(|o| o.status.success()),
        "Graphviz `dot` is missing: run scripts/install-graphviz (as root)"
    );
    for (name, cfg) in examples() {
        let text = Topology::from_config(&cfg).render(Format::Dot);
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{name}: dot failed: {stderr}\n{text}"
        );
        let svg = String::from_utf8_lossy(&out.stdout);
        assert!(svg.contains("<svg"), "{name}");
        // Every node was drawn.
        for n in Topology::from_config(&cfg).nodes {
            assert!(
                svg.contains(&format!("<title>{}</title>", n.id())),
                "{name}: node {} missing",
                n.id()
            );
        }
    }
}

#[test]
fn every_route_store_and_section_appears() {
    for (name, cfg) in examples() {
        let t = Topology::from_config(&cfg);
        let text = t.render(Format::Text);
        for s in cfg.stores.keys() {
            assert!(text.contains(&format!("  {s} (kind ")), "{name}: store {s}");
        }
        for (e, ec) in &cfg.entities {
            assert!(
                t.edges
                    .iter()
                    .any(|x| x.from.1 == *e && x.to.1 == ec.store && x.label == "records"),
                "{name}: entity {e}"
            );
            if let Some(c) = &ec.cache {
                assert!(
                    t.edges.iter().any(|x| x.from.1 == *e
                        && x.to.1 == c.store
                        && x.label.starts_with("cache"))
                );
            }
        }
        for g in cfg.graphs.keys() {
            assert!(text.contains(&format!("  {g}\n")), "{name}: graph {g}");
        }
        for v in cfg.views.keys() {
            assert!(text.contains(&format!("  {v}\n")), "{name}: view {v}");
        }
    }
}

#[test]
fn hostile_names_stay_inside_their_labels() {
    let cfg = Config::parse(
        "[stores.\"a\\\"b]\"]\nkind = \"memory\"\n[entities.\"x|y -> z\"]\nstore = \"a\\\"b]\"\n",
        "evil.toml",
    )
    .unwrap();
    let t = Topology::from_config(&cfg);
    let dot = t.render(Format::Dot);
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz `dot`: run scripts/install-graphviz");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{dot}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mermaid = t.render(Format::Mermaid);
    assert!(mermaid.contains("x#124;y -#gt; z"), "{mermaid}");
    assert!(!mermaid.contains("a\"b"), "{mermaid}");
}

#[test]
fn the_cli_prints_each_format() {
    for format in ["text", "mermaid", "dot"] {
        let out = Command::new(env!("CARGO_BIN_EXE_polyrouter"))
            .args([
                "topology",
                "--config",
                "examples/social.toml",
                "--format",
                format,
            ])
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("social"), "{format}: {stdout}");
    }
}
