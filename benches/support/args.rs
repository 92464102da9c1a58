//! The filter words of a bench's command line (`cargo bench --bench X --
//! sqlite --warm-up-time 1`), without the values of criterion's options, so
//! a bench can skip the set-up of stores nobody asked for.

/// Criterion options that take a value (the next argument).
const VALUED: &[&str] = &[
    "--warm-up-time",
    "--measurement-time",
    "--sample-size",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--save-baseline",
    "--baseline",
    "--load-baseline",
    "--profile-time",
    "--output-format",
    "--plotting-backend",
    "--color",
    "-c",
    "-s",
    "-b",
];

/// The filter words: every argument that is neither an option nor an
/// option's value.
pub fn filters() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if VALUED.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            out.push(a);
        }
    }
    out
}

/// Whether the store `name` is wanted: no filter, or a filter naming it
/// (`sqlite`, `sqlite/fof_10`).
pub fn wanted(name: &str) -> bool {
    let f = filters();
    f.is_empty()
        || f.iter()
            .any(|a| a.contains(name) || name.contains(a.as_str()))
}
