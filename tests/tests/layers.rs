//! The crates' layering, checked from the sources: which crate may know SQL, and which way the
//! dependencies point. The application layer is only worth having if it stays free of
//! transports and databases, and handlers only translate if no query creeps back in.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// What gives SQL away: the query builders, and statements in string literals.
const SQL_MARKERS: &[&str] = &[
    "sqlx::query",
    "query_scalar",
    "query_as",
    "\"SELECT ",
    "\"INSERT ",
    "\"UPDATE ",
    "\"DELETE ",
    "\"WITH ",
    "SET LOCAL",
    "\"BEGIN",
];

#[test]
fn handlers_hold_no_sql() {
    let mut found = Vec::new();
    for file in rust_files(&root().join("handlers/src")) {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(marker) = SQL_MARKERS.iter().find(|marker| line.contains(*marker)) {
                found.push(format!(
                    "{}:{}: {marker}",
                    file.strip_prefix(root()).unwrap_or(&file).display(),
                    number + 1
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SQL belongs in adapters or projections, not in handlers:\n{}",
        found.join("\n")
    );
}

/// The names under `[dependencies]` of `crate_dir`'s manifest.
fn dependencies(crate_dir: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join(crate_dir).join("Cargo.toml"))
        .expect("a readable manifest");
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line
            .split(['=', '.'])
            .next()
            .expect("a dependency line")
            .trim();
        names.push(name.to_owned());
    }
    names
}

fn assert_depends_on_none(crate_dir: &str, forbidden: &[&str]) {
    let offending: Vec<_> = dependencies(crate_dir)
        .into_iter()
        .filter(|name| {
            forbidden
                .iter()
                .any(|prefix| name == prefix || name.starts_with(&format!("{prefix}-")))
        })
        .collect();
    assert!(
        offending.is_empty(),
        "{crate_dir} must not depend on {offending:?}"
    );
}

#[test]
fn the_application_layer_knows_no_database_transport_or_cloud() {
    assert!(
        dependencies("application").contains(&"casebook-domain".to_owned()),
        "the manifest was read"
    );
    assert_depends_on_none(
        "application",
        &[
            "sqlx",
            "postgres",
            "pgvector",
            "aws",
            "axum",
            "tower",
            "lambda_http",
            "lambda_runtime",
            "reqwest",
            "casebook-adapters",
            "casebook-projections",
            "casebook-handlers",
            "casebook-vault",
        ],
    );
}

#[test]
fn the_domain_depends_on_nothing_of_ours_and_nothing_outside() {
    assert_depends_on_none(
        "domain",
        &[
            "sqlx",
            "aws",
            "axum",
            "tokio",
            "casebook-application",
            "casebook-adapters",
            "casebook-projections",
            "casebook-handlers",
            "casebook-vault",
        ],
    );
}

#[test]
fn adapters_and_projections_never_meet_and_neither_reaches_up() {
    assert_depends_on_none("adapters", &["casebook-projections", "casebook-handlers"]);
    assert_depends_on_none("projections", &["casebook-adapters", "casebook-handlers"]);
}

/// The vault seals what the domain lists as personal, for the stores and the readers of the
/// log alike, so it knows the domain and none of them.
#[test]
fn the_vault_knows_the_domain_and_nothing_that_uses_it() {
    assert!(
        dependencies("vault").contains(&"casebook-domain".to_owned()),
        "the manifest was read"
    );
    assert_depends_on_none(
        "vault",
        &[
            "casebook-application",
            "casebook-adapters",
            "casebook-projections",
            "casebook-handlers",
        ],
    );
}
