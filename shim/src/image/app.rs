//! `wasmhttp image` of an app: the manifest and every route's component in
//! one tar layer. The manifest is the image's entrypoint (`/app.toml`), and
//! each component sits at `/app/<route name>.wasm`, where the manifest
//! names it; the shim's precompile step compiles every `.wasm` of the layer,
//! so each component is cached as a single one is. A route's middleware is
//! composed with its component here ([`super::middleware`]): the image holds
//! the one component that results, and its manifest names no middleware.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};

use super::middleware::compose_files;
use crate::routes::{self, COMPONENT_DIR, MANIFEST_PATH, RouteTable};
use crate::settings::{Environment, Limits};
use crate::world::{self, World};

/// An app's routes with each route's component, read and checked.
pub struct AppComponents {
    pub table: RouteTable,
    /// `wasm[i]` is the component of `table.routes[i]`.
    pub wasm: Vec<Vec<u8>>,
    pub worlds: Vec<World>,
}

impl AppComponents {
    /// Reads each route's component and middleware through `read` (given
    /// the manifest's names), composes the middleware in front of the
    /// component, and checks that the route can serve the result with the
    /// default container settings and its own: what a container start
    /// checks again, with the container's.
    pub fn load(table: RouteTable, mut read: impl FnMut(&str) -> Result<Vec<u8>>) -> Result<Self> {
        let env = Environment::from_entries::<&str>(&[], &Limits::default())?;
        let mut wasm = Vec::with_capacity(table.routes.len());
        let mut worlds = Vec::with_capacity(table.routes.len());
        for route in &table.routes {
            let checked = (|| {
                let bytes = read(&route.component)?;
                let world = world::detect(&bytes)
                    .with_context(|| format!("{} is not runnable", route.component))?;
                let bytes = compose_files(
                    &bytes,
                    world,
                    &route.component,
                    &route.middleware,
                    &mut read,
                )?;
                routes::plan_route(route, &env, world)?;
                Ok::<_, anyhow::Error>((bytes, world))
            })()
            .with_context(|| route.describe())?;
            wasm.push(checked.0);
            worlds.push(checked.1);
        }
        Ok(Self {
            table,
            wasm,
            worlds,
        })
    }
}

/// What [`write_app_image`] produced.
#[derive(Debug)]
pub struct AppSummary {
    pub reference: String,
    pub manifest_digest: String,
    /// Each route as described in errors, with its component's world.
    pub routes: Vec<(String, World)>,
}

/// Writes the image archive of `app` to `out`: `/app.toml`, the manifest
/// with each component where it was put, then the components (one file per
/// distinct component, shared by the routes whose components are the same
/// bytes: two routes naming one file with different middleware are two).
pub fn write_app_image(
    app: &AppComponents,
    reference: &str,
    out: impl Write,
) -> Result<AppSummary> {
    let mut placed: HashMap<&[u8], String> = HashMap::new();
    let mut files: Vec<(String, &[u8])> = Vec::new();
    let mut located: Vec<String> = Vec::with_capacity(app.wasm.len());
    for (route, wasm) in app.table.routes.iter().zip(&app.wasm) {
        let path = placed.entry(wasm.as_slice()).or_insert_with(|| {
            let path = format!("{COMPONENT_DIR}/{}.wasm", route.name);
            files.push((path.clone(), wasm));
            path
        });
        located.push(path.clone());
    }
    let mut manifest = app.table.to_manifest(|route| {
        let index = app.table.routes.iter().position(|r| r.name == route.name);
        located[index.expect("a route of this table")].clone()
    });
    // composed into the components above
    for route in &mut manifest.routes {
        route.middleware.clear();
    }
    let manifest = toml::to_string(&manifest).context("writing the app manifest")?;
    let mut all: Vec<(&str, &[u8])> = vec![(MANIFEST_PATH, manifest.as_bytes())];
    all.extend(files.iter().map(|(path, wasm)| (path.as_str(), *wasm)));
    let os = if app.worlds.iter().all(|w| *w == World::HttpService) {
        "wasip3"
    } else {
        "wasip2"
    };
    let (reference, manifest_digest) =
        super::write_rootfs_image(&all, os, "wasmhttp/app", reference, out)?;
    Ok(AppSummary {
        reference,
        manifest_digest,
        routes: app
            .table
            .routes
            .iter()
            .zip(&app.worlds)
            .map(|(route, world)| {
                let described = match route.middleware.as_slice() {
                    [] => route.describe(),
                    chain => format!("{} behind {}", route.describe(), chain.join(", ")),
                };
                (described, *world)
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::super::tests::{image_config, read_archive};
    use super::*;

    fn table(text: &str) -> RouteTable {
        RouteTable::parse(text).unwrap()
    }

    /// The files of an app image's one layer, by path.
    fn app_layer(image: &[u8]) -> std::collections::HashMap<String, Vec<u8>> {
        let files = read_archive(image);
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let blob = |digest: &str| {
            &files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))]
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(blob(index["manifests"][0]["digest"].as_str().unwrap()))
                .unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&blob(manifest["layers"][0]["digest"].as_str().unwrap())[..])
            .read_to_end(&mut tar)
            .unwrap();
        read_archive(&tar)
    }

    fn fixtures(name: &str) -> Result<Vec<u8>> {
        wasmhttp_fixtures::build(name.trim_end_matches(".wasm"))
    }

    #[test]
    fn an_app_image_carries_its_manifest_and_each_component_once() {
        let app = AppComponents::load(
            table(
                r#"
                [[route]]
                path = "/..."
                component = "hello.wasm"
                [[route]]
                path = "/api/..."
                component = "hello.wasm"
                name = "api"
                env = ["WASMHTTP_REQUEST_TIMEOUT=2s"]
                [[route]]
                path = "/cgi-bin/..."
                component = "cgi.wasm"
                env = ["WASMHTTP_MODE=cgi"]
                args = ["-v"]
                "#,
            ),
            fixtures,
        )
        .unwrap();
        let mut out = Vec::new();
        let summary = write_app_image(&app, "app:1", &mut out).unwrap();
        assert_eq!(summary.routes.len(), 3);
        let config = image_config(&out);
        assert_eq!(config["config"]["Entrypoint"][0], MANIFEST_PATH);

        let inner = app_layer(&out);
        let mut names: Vec<&String> = inner.keys().collect();
        names.sort();
        assert_eq!(names, ["app.toml", "app/cgi.wasm", "app/hello.wasm"]);
        // the manifest in the image parses to the same routes, located there
        let carried = table(std::str::from_utf8(&inner["app.toml"]).unwrap());
        assert_eq!(carried.routes[1].component, "/app/hello.wasm");
        assert_eq!(carried.routes[1].name, "api");
        assert_eq!(carried.routes[1].env, ["WASMHTTP_REQUEST_TIMEOUT=2s"]);
        assert_eq!(carried.routes[2].component, "/app/cgi.wasm");
        assert_eq!(carried.routes[2].args, ["-v"]);
        assert_eq!(inner["app/cgi.wasm"], fixtures("cgi").unwrap());
    }

    #[test]
    fn middleware_is_composed_into_each_routes_own_component_file() {
        use super::super::middleware::tests::{pass_through, stand_in_handler};
        let app = AppComponents::load(
            table(
                r#"
                [[route]]
                path = "/a/..."
                component = "api.wasm"
                name = "a"
                middleware = ["auth.wasm"]
                [[route]]
                path = "/b/..."
                component = "api.wasm"
                name = "b"
                [[route]]
                path = "/c/..."
                component = "api.wasm"
                name = "c"
                middleware = ["auth.wasm"]
                "#,
            ),
            |name| match name {
                "api.wasm" => Ok(stand_in_handler()),
                "auth.wasm" => Ok(pass_through("0.3.0")),
                other => anyhow::bail!("reading {other}: No such file or directory"),
            },
        )
        .unwrap();
        assert_ne!(app.wasm[0], app.wasm[1], "composed");
        assert_eq!(app.wasm[0], app.wasm[2], "the same chain, the same bytes");
        let mut out = Vec::new();
        let summary = write_app_image(&app, "app:1", &mut out).unwrap();
        assert_eq!(summary.routes[0].0, "route /a/... (a) behind auth.wasm");
        assert_eq!(summary.routes[1].0, "route /b/... (b)");

        let inner = app_layer(&out);
        let mut names: Vec<&String> = inner.keys().collect();
        names.sort();
        // a and c share their composed component; b has the handler alone
        assert_eq!(names, ["app.toml", "app/a.wasm", "app/b.wasm"]);
        assert_eq!(inner["app/b.wasm"], stand_in_handler());
        let carried = table(std::str::from_utf8(&inner["app.toml"]).unwrap());
        assert_eq!(carried.routes[2].component, "/app/a.wasm");
        assert!(
            carried
                .routes
                .iter()
                .all(|route| route.middleware.is_empty())
        );
        carried.check_composed().unwrap();
    }

    #[test]
    fn a_route_that_cannot_serve_its_component_is_named_at_image_time() {
        let err = AppComponents::load(
            table(
                r#"
                [[route]]
                path = "/..."
                component = "hello.wasm"
                [[route]]
                path = "/cgi-bin/..."
                component = "cgi.wasm"
                "#,
            ),
            fixtures,
        )
        .err()
        .unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("route /cgi-bin/... (cgi)"), "{text}");
        assert!(text.contains("WASMHTTP_MODE=cgi"), "{text}");

        let err = AppComponents::load(
            table("[[route]]\npath = \"/x\"\ncomponent = \"gone.wasm\"\n"),
            |name| anyhow::bail!("reading {name}: No such file or directory"),
        )
        .err()
        .unwrap();
        let text = format!("{err:#}");
        assert!(
            text.contains("route /x (gone)") && text.contains("gone.wasm"),
            "{text}"
        );
    }
}
