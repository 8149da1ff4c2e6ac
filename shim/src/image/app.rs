//! `wasmhttp image` of an app: the manifest and every route's component in
//! one tar layer. The manifest is the image's entrypoint (`/app.toml`), and
//! each component sits at `/app/<route name>.wasm`, where the manifest
//! names it; the shim's precompile step compiles every `.wasm` of the layer,
//! so each component is cached as a single one is. A route's middleware is
//! composed with its component here ([`super::middleware`]): the image holds
//! the one component that results, and its manifest names no middleware.
//! [`write_app_artifact`] writes the same app as a Wasm OCI artifact.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use anyhow::{Context, Result};

use super::artifact::{
    ARTIFACT_LAYER_MEDIA_TYPE, ArtifactComponent, ArtifactLayer, ArtifactMetadata, write_layers,
};
use super::middleware::compose_files;
use super::world_items;
use crate::precompile::sha256_hex;
use crate::routes::{self, COMPONENT_DIR, MANIFEST_PATH, Route, RouteTable};
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
    let placed = app.place(|route, _| format!("{COMPONENT_DIR}/{}.wasm", route.name))?;
    let mut all: Vec<(&str, &[u8])> = vec![(MANIFEST_PATH, placed.manifest.as_bytes())];
    all.extend(
        placed
            .components
            .iter()
            .map(|c| (c.location.as_str(), c.wasm)),
    );
    let os = if app.worlds.iter().all(|w| *w == World::HttpService) {
        "wasip3"
    } else {
        "wasip2"
    };
    let (reference, manifest_digest) =
        super::write_rootfs_image(&all, os, "wasmhttp/app", reference, out)?;
    Ok(app.summary(reference, manifest_digest))
}

/// Writes `app` as a Wasm OCI artifact: the manifest as the first layer
/// ([`routes::MANIFEST_MEDIA_TYPE`], titled `app.toml`), naming each route's
/// component by the `sha256:` digest of its layer, then one
/// `application/wasm` layer per distinct component, titled
/// `<first route's name>.wasm`. The config is the CNCF one: every layer's
/// digest, and as `component` the imports and exports of all the app's
/// components together (a preview 1 CGI program, a module, adds none).
/// containerd runs it as it runs a one-component artifact: through CRI,
/// with a `command` (any: the shim finds the manifest's layer).
pub fn write_app_artifact(
    app: &AppComponents,
    reference: &str,
    metadata: &ArtifactMetadata,
    out: impl Write,
) -> Result<AppSummary> {
    let placed = app.place(|_, wasm| format!("sha256:{}", sha256_hex(wasm)))?;
    let titles: Vec<String> = placed
        .components
        .iter()
        .map(|c| format!("{}.wasm", c.first_route))
        .collect();
    let mut layers = vec![ArtifactLayer {
        media_type: routes::MANIFEST_MEDIA_TYPE,
        content: placed.manifest.as_bytes(),
        title: MANIFEST_PATH.trim_start_matches('/'),
    }];
    layers.extend(
        placed
            .components
            .iter()
            .zip(&titles)
            .map(|(c, title)| ArtifactLayer {
                media_type: ARTIFACT_LAYER_MEDIA_TYPE,
                content: c.wasm,
                title,
            }),
    );
    let (mut imports, mut exports) = (BTreeSet::new(), BTreeSet::new());
    for c in placed
        .components
        .iter()
        .filter(|c| c.world != World::Wasip1Command)
    {
        let (i, e) = world_items(c.wasm)?;
        imports.extend(i);
        exports.extend(e);
    }
    let component = (!exports.is_empty()).then(|| ArtifactComponent {
        exports: exports.into_iter().collect(),
        imports: imports.into_iter().collect(),
        target: None,
    });
    let (reference, manifest_digest) = write_layers(&layers, component, reference, metadata, out)?;
    Ok(app.summary(reference, manifest_digest))
}

/// An app laid out for an image: the manifest that names each component
/// where it was put, and each distinct component once.
struct Placed<'a> {
    manifest: String,
    components: Vec<PlacedComponent<'a>>,
}

struct PlacedComponent<'a> {
    location: String,
    /// The first route whose component this is.
    first_route: &'a str,
    world: World,
    wasm: &'a [u8],
}

impl AppComponents {
    /// Puts each distinct component where `locate` says (given the first
    /// route with it), and writes the manifest naming those places.
    fn place(&self, locate: impl Fn(&Route, &[u8]) -> String) -> Result<Placed<'_>> {
        let mut placed: HashMap<&[u8], usize> = HashMap::new();
        let mut components: Vec<PlacedComponent> = Vec::new();
        let mut located: Vec<usize> = Vec::with_capacity(self.wasm.len());
        for ((route, wasm), world) in self.table.routes.iter().zip(&self.wasm).zip(&self.worlds) {
            let index = *placed.entry(wasm.as_slice()).or_insert_with(|| {
                components.push(PlacedComponent {
                    location: locate(route, wasm),
                    first_route: &route.name,
                    world: *world,
                    wasm,
                });
                components.len() - 1
            });
            located.push(index);
        }
        let mut manifest = self.table.to_manifest(|route| {
            let index = self.table.routes.iter().position(|r| r.name == route.name);
            components[located[index.expect("a route of this table")]]
                .location
                .clone()
        });
        // composed into the components above
        for route in &mut manifest.routes {
            route.middleware.clear();
        }
        Ok(Placed {
            manifest: toml::to_string(&manifest).context("writing the app manifest")?,
            components,
        })
    }

    fn summary(&self, reference: String, manifest_digest: String) -> AppSummary {
        AppSummary {
            reference,
            manifest_digest,
            routes: self
                .table
                .routes
                .iter()
                .zip(&self.worlds)
                .map(|(route, world)| {
                    let described = match route.middleware.as_slice() {
                        [] => route.describe(),
                        chain => format!("{} behind {}", route.describe(), chain.join(", ")),
                    };
                    (described, *world)
                })
                .collect(),
        }
    }
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

    /// hello at two routes (one with a setting), the CGI program at a third.
    const THREE_ROUTES: &str = r#"
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
    "#;

    fn fixtures(name: &str) -> Result<Vec<u8>> {
        wasmhttp_fixtures::build(name.trim_end_matches(".wasm"))
    }

    #[test]
    fn an_app_image_carries_its_manifest_and_each_component_once() {
        let app = AppComponents::load(table(THREE_ROUTES), fixtures).unwrap();
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
    fn an_app_artifact_has_its_manifest_layer_naming_each_component_layer_by_digest() {
        let app = AppComponents::load(table(THREE_ROUTES), fixtures).unwrap();
        let metadata = ArtifactMetadata {
            created: "2026-12-05T08:00:00Z".into(),
            author: Some("wasmhttp".into()),
            title: String::new(),
            annotations: [("org.opencontainers.image.version".into(), "1".into())].into(),
        };
        let mut out = Vec::new();
        let summary = write_app_artifact(&app, "app:1", &metadata, &mut out).unwrap();
        assert_eq!(summary.routes.len(), 3);
        assert_eq!(summary.reference, "docker.io/library/app:1");

        let files = read_archive(&out);
        let blob = |digest: &str| {
            files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))].clone()
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(&summary.manifest_digest)).unwrap();
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.version"],
            "1"
        );
        let layers = manifest["layers"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = layers
            .iter()
            .map(|layer| {
                (
                    layer["mediaType"].as_str().unwrap(),
                    layer["annotations"]["org.opencontainers.image.title"]
                        .as_str()
                        .unwrap(),
                )
            })
            .collect();
        // one layer per distinct component: the two hello routes share one
        assert_eq!(
            kinds,
            [
                (routes::MANIFEST_MEDIA_TYPE, "app.toml"),
                (ARTIFACT_LAYER_MEDIA_TYPE, "hello.wasm"),
                (ARTIFACT_LAYER_MEDIA_TYPE, "cgi.wasm"),
            ]
        );
        let digest = |i: usize| layers[i]["digest"].as_str().unwrap().to_string();
        assert_eq!(blob(&digest(1)), fixtures("hello").unwrap());
        assert_eq!(blob(&digest(2)), fixtures("cgi").unwrap());

        let carried = table(std::str::from_utf8(&blob(&digest(0))).unwrap());
        let named: Vec<(&str, &str)> = carried
            .routes
            .iter()
            .map(|r| (r.name.as_str(), r.component.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("hello", digest(1).as_str()),
                ("api", digest(1).as_str()),
                ("cgi", digest(2).as_str())
            ]
        );
        assert_eq!(carried.routes[1].env, ["WASMHTTP_REQUEST_TIMEOUT=2s"]);

        // the CNCF config: every layer's digest, the components' world
        assert_eq!(
            manifest["config"]["mediaType"],
            super::super::ARTIFACT_CONFIG_MEDIA_TYPE
        );
        let config: serde_json::Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["author"], "wasmhttp");
        assert_eq!(
            config["layerDigests"],
            serde_json::json!([digest(0), digest(1), digest(2)])
        );
        let exports = config["component"]["exports"].as_array().unwrap();
        assert!(
            exports.iter().any(|e| e
                .as_str()
                .unwrap()
                .starts_with("wasi:http/incoming-handler@")),
            "{config}"
        );
        // the CGI program is a preview 1 module: it adds no world items
        assert!(
            config["component"]["imports"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| !i.as_str().unwrap().starts_with("wasi_snapshot_preview1")),
            "{config}"
        );

        // the shim's precompile step passes the manifest layer on as it is
        assert!(
            crate::precompile::components_in_layer(routes::MANIFEST_MEDIA_TYPE, &blob(&digest(0)))
                .unwrap()
                .is_empty()
        );
        // the same app and metadata give the same artifact
        let mut again = Vec::new();
        write_app_artifact(&app, "app:1", &metadata, &mut again).unwrap();
        assert_eq!(out, again);
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
