//! An app's routes and the request paths matched against them: parsing a
//! manifest never panics, and in a table that parses, a path that matches
//! finds one route whose base and rest give back the path as sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhttp::routes::{Manifest, RouteEntry, RouteTable};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    /// Manifest text as a user would write it.
    text: String,
    /// `(path pattern, component)` routes of a table built directly, so that
    /// most inputs get past the TOML syntax to the route checks.
    routes: Vec<(String, String)>,
    /// Request paths, as hyper hands them over (no query).
    paths: Vec<String>,
}

fn check(table: &RouteTable, paths: &[String]) {
    for path in paths {
        if let Ok(Some(matched)) = table.find(path) {
            assert!(matched.index < table.routes.len());
            assert_eq!(format!("{}{}", matched.base, matched.rest), *path);
        }
    }
}

fuzz_target!(|input: Input| {
    if let Ok(table) = RouteTable::parse(&input.text) {
        check(&table, &input.paths);
    }
    let manifest = Manifest {
        routes: input
            .routes
            .into_iter()
            .map(|(path, component)| RouteEntry {
                path,
                component,
                name: None,
                env: Vec::new(),
                args: Vec::new(),
                volumes: None,
                middleware: Vec::new(),
            })
            .collect(),
        ..Manifest::default()
    };
    if let Ok(table) = RouteTable::from_manifest(manifest) {
        check(&table, &input.paths);
    }
});
