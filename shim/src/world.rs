//! What a wasm binary is, decided from its top-level exports before anything
//! is compiled, so that a wrong image fails fast with a readable reason.

use std::fmt;

use wasmparser::{ExternalKind, Parser, Payload};

use crate::settings::Mode;

/// The export that makes a component an HTTP handler (any 0.2.x).
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler@0.2";
/// The export that makes a component a WASI 0.3 HTTP service (`wasi:http/service`).
pub const HTTP_SERVICE: &str = "wasi:http/handler@0.3";
/// The export that makes a component a command.
pub const CLI_RUN: &str = "wasi:cli/run@0.2";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Exports `wasi:http/incoming-handler`: served over HTTP.
    HttpHandler,
    /// Exports `wasi:http/handler@0.3` (WASI 0.3, async): served over HTTP,
    /// one instance able to serve several requests at once.
    HttpService,
    /// Exports `wasi:cli/run` (and no handler): run once, its exit code is the container's.
    Command,
    /// A core module exporting `_start`: a WASI preview 1 command, run once or
    /// as a CGI program (WASMHTTP_MODE).
    Wasip1Command,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::HttpHandler => "wasi:http/incoming-handler component",
            World::HttpService => "wasi:http/handler@0.3 component",
            World::Command => "wasi:cli/run command component",
            World::Wasip1Command => "WASI preview 1 command module",
        })
    }
}

const EXPECTED: &str = "a WebAssembly component that exports wasi:http/incoming-handler@0.2.x \
                        or wasi:http/handler@0.3.x (served over HTTP) or wasi:cli/run@0.2.x (run as a command), or a WASI \
                        preview 1 module exporting _start (run with WASMHTTP_MODE=cgi or command)";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotRunnable {
    NotWasm {
        starts_with: String,
    },
    /// A core module without a `_start` to run.
    CoreModule,
    /// A `wasi:http/middleware` component: it imports the handler it
    /// forwards to, so it is composed in front of one, never run alone.
    Middleware {
        handler: String,
    },
    OtherWorld {
        exports: Vec<String>,
    },
    Malformed {
        reason: String,
    },
}

impl fmt::Display for NotRunnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRunnable::NotWasm { starts_with } => {
                write!(
                    f,
                    "found a file that is not WebAssembly (it starts with {starts_with}); expected {EXPECTED}"
                )
            }
            NotRunnable::CoreModule => write!(
                f,
                "found a core WebAssembly module that exports no _start function (a library, not a program); expected {EXPECTED}"
            ),
            NotRunnable::Middleware { handler } => write!(
                f,
                "found middleware (it imports and exports {handler}): it stands in front of a \
                 wasi:http 0.3 handler (`middleware = [...]` in an app's manifest, or \
                 `--middleware`), and is not run alone"
            ),
            NotRunnable::OtherWorld { exports } if exports.is_empty() => {
                write!(f, "found a component with no exports; expected {EXPECTED}")
            }
            NotRunnable::OtherWorld { exports } => {
                write!(
                    f,
                    "found a component that exports {}; expected {EXPECTED}",
                    exports.join(", ")
                )
            }
            NotRunnable::Malformed { reason } => {
                write!(
                    f,
                    "found a malformed WebAssembly component ({reason}); expected {EXPECTED}"
                )
            }
        }
    }
}

impl std::error::Error for NotRunnable {}

/// The names a component imports and exports at its top level (nested
/// components and core modules inside it are skipped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interfaces {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl Interfaces {
    /// The `wasi:http/handler@0.3.x` it imports, if it does: middleware's.
    pub fn imported_handler(&self) -> Option<&str> {
        self.imports
            .iter()
            .find(|name| name.starts_with(HTTP_SERVICE))
            .map(String::as_str)
    }

    /// The `wasi:http/handler@0.3.x` it exports, if it does.
    pub fn exported_handler(&self) -> Option<&str> {
        self.exports
            .iter()
            .find(|name| name.starts_with(HTTP_SERVICE))
            .map(String::as_str)
    }
}

/// What a component imports and exports; `bytes` is known to be a component.
pub fn interfaces(bytes: &[u8]) -> Result<Interfaces, NotRunnable> {
    let malformed = |e: wasmparser::BinaryReaderError| NotRunnable::Malformed {
        reason: e.to_string(),
    };
    let mut found = Interfaces::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    found
                        .exports
                        .push(export.map_err(malformed)?.name.name.to_string());
                }
            }
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    found
                        .imports
                        .push(import.map_err(malformed)?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Decides what `bytes` is. Only the top-level imports and exports of a
/// component count.
pub fn detect(bytes: &[u8]) -> Result<World, NotRunnable> {
    if !Parser::is_component(bytes) {
        if Parser::is_core_wasm(bytes) {
            return detect_core_module(bytes);
        }
        return Err(NotRunnable::NotWasm {
            starts_with: describe_start(bytes),
        });
    }
    let found = interfaces(bytes)?;
    if let Some(handler) = found.imported_handler() {
        return Err(NotRunnable::Middleware {
            handler: handler.to_string(),
        });
    }
    let exports = found.exports;
    if exports.iter().any(|e| e.starts_with(HTTP_HANDLER)) {
        Ok(World::HttpHandler)
    } else if exports.iter().any(|e| e.starts_with(HTTP_SERVICE)) {
        Ok(World::HttpService)
    } else if exports.iter().any(|e| e.starts_with(CLI_RUN)) {
        Ok(World::Command)
    } else {
        Err(NotRunnable::OtherWorld { exports })
    }
}

/// A core module is a WASI command when it exports a `_start` function.
fn detect_core_module(bytes: &[u8]) -> Result<World, NotRunnable> {
    let malformed = |e: wasmparser::BinaryReaderError| NotRunnable::Malformed {
        reason: e.to_string(),
    };
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::ExportSection(section) = payload.map_err(malformed)? {
            for export in section {
                let export = export.map_err(malformed)?;
                if export.name == "_start" && export.kind == ExternalKind::Func {
                    return Ok(World::Wasip1Command);
                }
            }
        }
    }
    Err(NotRunnable::CoreModule)
}

/// How a program is run: decided by WASMHTTP_MODE and what the program is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Serve the component's HTTP handler.
    Proxy,
    /// Serve the WASI 0.3 component's `wasi:http/handler`.
    Service,
    /// Run the command once; its exit code is the container's.
    Command,
    /// Serve HTTP, running the command once per request as a CGI program.
    Cgi,
}

/// A program the mode cannot run, with what would run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrongMode {
    pub mode: Mode,
    pub world: World,
}

impl fmt::Display for WrongMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { mode, world } = self;
        match (mode, world) {
            (Mode::Auto, World::Wasip1Command) => write!(
                f,
                "found a core WebAssembly module (a WASI preview 1 command), not a component; \
                 wasmhttp runs it as a CGI program with WASMHTTP_MODE=cgi (or once with \
                 WASMHTTP_MODE=command)"
            ),
            (_, World::HttpHandler | World::HttpService) => write!(
                f,
                "WASMHTTP_MODE={mode} runs commands, but found a {world}; serve it with \
                 WASMHTTP_MODE=proxy or auto"
            ),
            _ => write!(
                f,
                "WASMHTTP_MODE={mode} serves wasi:http/incoming-handler components, but found a \
                 {world}; run it with WASMHTTP_MODE=cgi (per request) or command (once)"
            ),
        }
    }
}

impl std::error::Error for WrongMode {}

/// What WASMHTTP_MODE makes of a program of this world.
pub fn plan(mode: Mode, world: World) -> Result<Plan, WrongMode> {
    match (mode, world) {
        (Mode::Auto | Mode::Proxy, World::HttpHandler) => Ok(Plan::Proxy),
        (Mode::Auto | Mode::Proxy, World::HttpService) => Ok(Plan::Service),
        (Mode::Auto | Mode::Command, World::Command) => Ok(Plan::Command),
        (Mode::Command, World::Wasip1Command) => Ok(Plan::Command),
        (Mode::Cgi, World::Command | World::Wasip1Command) => Ok(Plan::Cgi),
        _ => Err(WrongMode { mode, world }),
    }
}

fn describe_start(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing: the file is empty".into();
    }
    let head = &bytes[..bytes.len().min(16)];
    if head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        format!("the text {:?}", String::from_utf8_lossy(line))
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("the bytes {}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        wasmhttp_fixtures::build(name).unwrap()
    }

    #[test]
    fn handlers_and_commands_are_recognised() {
        assert_eq!(detect(&fixture("hello")), Ok(World::HttpHandler));
        assert_eq!(detect(&fixture("echo")), Ok(World::HttpHandler));
        assert_eq!(detect(&fixture("command")), Ok(World::Command));
    }

    #[test]
    fn core_modules_are_commands_when_they_export_start() {
        assert_eq!(detect(&fixture("core-module")), Ok(World::Wasip1Command));
        let err = detect(&fixture("library-module")).unwrap_err();
        assert_eq!(err, NotRunnable::CoreModule);
        assert!(err.to_string().contains("no _start"), "{err}");
        assert!(
            err.to_string().contains("wasi:http/incoming-handler"),
            "{err}"
        );
    }

    #[test]
    fn the_mode_decides_how_a_world_runs() {
        use World::*;
        assert_eq!(plan(Mode::Auto, HttpHandler), Ok(Plan::Proxy));
        assert_eq!(plan(Mode::Auto, Command), Ok(Plan::Command));
        assert_eq!(plan(Mode::Proxy, HttpHandler), Ok(Plan::Proxy));
        assert_eq!(plan(Mode::Command, Command), Ok(Plan::Command));
        assert_eq!(plan(Mode::Command, Wasip1Command), Ok(Plan::Command));
        assert_eq!(plan(Mode::Cgi, Command), Ok(Plan::Cgi));
        assert_eq!(plan(Mode::Cgi, Wasip1Command), Ok(Plan::Cgi));
        // a preview 1 module is never guessed to be a CGI program
        let err = plan(Mode::Auto, Wasip1Command).unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
        assert!(err.contains("WASMHTTP_MODE=cgi"), "{err}");
        let err = plan(Mode::Cgi, HttpHandler).unwrap_err().to_string();
        assert!(err.contains("WASMHTTP_MODE=proxy"), "{err}");
        let err = plan(Mode::Proxy, Command).unwrap_err().to_string();
        assert!(err.contains("WASMHTTP_MODE=cgi"), "{err}");
        assert!(plan(Mode::Proxy, Wasip1Command).is_err());
        assert!(plan(Mode::Command, HttpHandler).is_err());
    }

    #[test]
    fn other_worlds_list_what_they_export() {
        let err = detect(&fixture("other-world")).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("wasmhttp:fixtures/unrelated"), "{message}");
        assert!(message.contains("expected"), "{message}");
    }

    #[test]
    fn non_wasm_says_what_it_starts_with() {
        let err = detect(b"#!/bin/sh\necho hi").unwrap_err();
        assert!(err.to_string().contains("\"#!/bin/sh\""), "{err}");
        let err = detect(b"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn truncated_components_are_malformed() {
        let hello = fixture("hello");
        let err = detect(&hello[..hello.len() / 2]).unwrap_err();
        assert!(matches!(err, NotRunnable::Malformed { .. }), "{err:?}");
    }
}
