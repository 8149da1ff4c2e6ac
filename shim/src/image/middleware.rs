//! Middleware composed in front of a handler when an image is built (and when
//! `wasmhttp serve` loads an app). A component of the
//! `wasi:http/middleware@0.3.0` world imports the `wasi:http/handler` it
//! forwards to and exports one itself, so `auth(api)` is again a handler: one
//! component, precompiled and cached like any other, with no call between
//! them that the host takes part in. The composition is wac-graph's, the
//! library Spin composes its middleware with.
//!
//! Only a wasi:http 0.3 handler can stand behind middleware: a 0.2
//! `incoming-handler` takes its request as another type (a resource of
//! `wasi:http/types@0.2`), and no adapter between the two exists that keeps
//! streaming bodies and trailers, so it is refused, saying so.

use anyhow::{Context, Result, bail};
use wac_graph::{CompositionGraph, EncodeOptions, types::Package};

use crate::world::{self, NotRunnable, World};

/// One middleware of a chain: how errors name it, and its bytes.
pub struct Middleware<'a> {
    pub name: &'a str,
    pub wasm: &'a [u8],
}

/// `chain[0](chain[1](...(handler)))`: a request meets `chain[0]` first.
/// `handler` is a component of `world`; the result is a wasi:http 0.3
/// handler component.
pub fn compose(handler: &[u8], world: World, chain: &[Middleware<'_>]) -> Result<Vec<u8>> {
    if chain.is_empty() {
        return Ok(handler.to_vec());
    }
    if world != World::HttpService {
        bail!(
            "middleware stands in front of a wasi:http 0.3 handler (wasi:http/handler@0.3), and \
             this is a {world}; a 0.2 handler takes its requests as another type, so serve it \
             without middleware or build it for wasi:http/service@0.3.0"
        );
    }
    let inner = world::interfaces(handler)?;
    let Some(handler_export) = inner.exported_handler() else {
        bail!("exports no wasi:http/handler@0.3");
    };
    let handler_export = handler_export.to_string();

    let mut graph = CompositionGraph::new();
    let package = Package::from_bytes("wasmhttp:handler", None, handler, graph.types_mut())
        .context("reading the handler for composition")?;
    let package = graph.register_package(package)?;
    let instance = graph.instantiate(package);
    let mut forwarded = graph.alias_instance_export(instance, &handler_export)?;

    // innermost first: the last middleware of the chain is handed the handler
    for (index, middleware) in chain.iter().enumerate().rev() {
        let named = || format!("middleware {}", middleware.name);
        let interfaces = check(middleware.wasm, &handler_export).with_context(named)?;
        let package = Package::from_bytes(
            &format!("wasmhttp:middleware{index}"),
            None,
            middleware.wasm,
            graph.types_mut(),
        )
        .with_context(named)?;
        let package = graph.register_package(package).with_context(named)?;
        let instance = graph.instantiate(package);
        graph
            .set_instantiation_argument(instance, &interfaces.imports, forwarded)
            .with_context(|| {
                format!(
                    "{}: its {} import does not take the handler's export",
                    named(),
                    interfaces.imports
                )
            })?;
        forwarded = graph
            .alias_instance_export(instance, &interfaces.exports)
            .with_context(named)?;
    }
    graph.export(forwarded, &handler_export)?;
    let composed = graph
        .encode(EncodeOptions::default())
        .context("composing the middleware with the handler")?;
    Ok(composed)
}

/// [`compose`] with the middleware `files`, read through `read`; an error
/// names the handler (`what`) and the chain.
pub fn compose_files(
    handler: &[u8],
    world: World,
    what: &str,
    files: &[String],
    mut read: impl FnMut(&str) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let wasm = files
        .iter()
        .map(|file| read(file))
        .collect::<Result<Vec<_>>>()?;
    let chain: Vec<Middleware<'_>> = files
        .iter()
        .zip(&wasm)
        .map(|(name, wasm)| Middleware { name, wasm })
        .collect();
    compose(handler, world, &chain).with_context(|| format!("{what} behind {}", files.join(", ")))
}

/// The handler interface a middleware imports and the one it exports.
struct Forwards {
    imports: String,
    exports: String,
}

/// That `wasm` is middleware for a handler exporting `handler_export`.
fn check(wasm: &[u8], handler_export: &str) -> Result<Forwards> {
    let not_middleware = "is not middleware: middleware is a component of the \
                          wasi:http/middleware@0.3.0 world, which imports the \
                          wasi:http/handler@0.3 it forwards to and exports one";
    let interfaces = match world::detect(wasm) {
        Err(NotRunnable::Middleware { .. }) => world::interfaces(wasm)?,
        Ok(found) => bail!("{not_middleware}; this is a {found}"),
        Err(not_runnable) => return Err(not_runnable).context(not_middleware),
    };
    let imports = interfaces
        .imported_handler()
        .unwrap_or_default()
        .to_string();
    let Some(exports) = interfaces.exported_handler() else {
        bail!("{not_middleware}; it exports no wasi:http/handler@0.3");
    };
    if imports != handler_export || exports != handler_export {
        bail!(
            "imports {imports} and exports {exports}, and the handler behind it exports \
             {handler_export}: build them against one wasi:http version"
        );
    }
    Ok(Forwards {
        imports,
        exports: exports.to_string(),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The smallest middleware: imports `wasi:http/handler@VERSION` and
    /// exports it as it came.
    pub(crate) fn pass_through(version: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(component
                 (import "wasi:http/handler@{version}" (instance $next))
                 (export "wasi:http/handler@{version}" (instance $next)))"#
        ))
        .unwrap()
    }

    /// A stand-in 0.3 handler: it exports, as its handler, an instance it
    /// imports under another name (what it exports is all composition sees).
    pub(crate) fn stand_in_handler() -> Vec<u8> {
        wat::parse_str(
            r#"(component
                 (import "wasmhttp:test/inner" (instance $inner))
                 (export "wasi:http/handler@0.3.0" (instance $inner)))"#,
        )
        .unwrap()
    }

    #[test]
    fn middleware_composes_into_one_handler_that_imports_none() {
        let handler = stand_in_handler();
        assert_eq!(world::detect(&handler), Ok(World::HttpService));
        let (a, b) = (pass_through("0.3.0"), pass_through("0.3.0"));
        let chain = [
            Middleware {
                name: "a.wasm",
                wasm: &a,
            },
            Middleware {
                name: "b.wasm",
                wasm: &b,
            },
        ];
        let composed = compose(&handler, World::HttpService, &chain).unwrap();
        assert_eq!(world::detect(&composed), Ok(World::HttpService));
        let interfaces = world::interfaces(&composed).unwrap();
        assert_eq!(interfaces.imports, ["wasmhttp:test/inner"]);
        assert_eq!(interfaces.exports, ["wasi:http/handler@0.3.0"]);
        // no middleware: the handler as it is
        assert_eq!(compose(&handler, World::HttpService, &[]).unwrap(), handler);
    }

    #[test]
    fn only_a_0_3_handler_stands_behind_middleware_and_only_middleware_in_front() {
        let hello = wasmhttp_fixtures::build("hello").unwrap();
        let auth = pass_through("0.3.0");
        let chain = [Middleware {
            name: "auth.wasm",
            wasm: &auth,
        }];
        let err = compose(&hello, World::HttpHandler, &chain)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("middleware stands in front of a wasi:http 0.3 handler"),
            "{err}"
        );
        assert!(
            err.contains("wasi:http/incoming-handler component"),
            "{err}"
        );

        let handler = stand_in_handler();
        let not_middleware = [Middleware {
            name: "hello.wasm",
            wasm: &hello,
        }];
        let err = format!(
            "{:#}",
            compose(&handler, World::HttpService, &not_middleware).unwrap_err()
        );
        assert!(
            err.contains("middleware hello.wasm: is not middleware"),
            "{err}"
        );
        assert!(
            err.contains("this is a wasi:http/incoming-handler component"),
            "{err}"
        );

        let other_version = pass_through("0.3.1");
        let chain = [Middleware {
            name: "new.wasm",
            wasm: &other_version,
        }];
        let err = format!(
            "{:#}",
            compose(&handler, World::HttpService, &chain).unwrap_err()
        );
        assert!(
            err.contains("imports wasi:http/handler@0.3.1")
                && err.contains("exports wasi:http/handler@0.3.0"),
            "{err}"
        );
    }

    #[test]
    fn middleware_alone_is_not_runnable_and_says_why() {
        let err = world::detect(&pass_through("0.3.0")).unwrap_err();
        assert_eq!(
            err,
            NotRunnable::Middleware {
                handler: "wasi:http/handler@0.3.0".into()
            }
        );
        assert!(err.to_string().contains("not run alone"), "{err}");
    }
}
