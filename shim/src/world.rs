//! What a wasm binary is, decided from its top-level exports before anything
//! is compiled, so that a wrong image fails fast with a readable reason.

use std::fmt;

use wasmparser::{Parser, Payload};

/// The export that makes a component an HTTP handler (any 0.2.x).
pub const HTTP_HANDLER: &str = "wasi:http/incoming-handler@0.2";
/// The export that makes a component a command.
pub const CLI_RUN: &str = "wasi:cli/run@0.2";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Exports `wasi:http/incoming-handler`: served over HTTP.
    HttpHandler,
    /// Exports `wasi:cli/run` (and no handler): run once, its exit code is the container's.
    Command,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::HttpHandler => "wasi:http/incoming-handler component",
            World::Command => "wasi:cli/run command component",
        })
    }
}

const EXPECTED: &str = "a WebAssembly component that exports wasi:http/incoming-handler@0.2.x \
                        (served over HTTP) or wasi:cli/run@0.2.x (run as a command)";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotRunnable {
    NotWasm { starts_with: String },
    CoreModule,
    OtherWorld { exports: Vec<String> },
    Malformed { reason: String },
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
                "found a core WebAssembly module (WASI preview 1 style), not a component; expected {EXPECTED}"
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

/// Decides what `bytes` is. Only the top-level exports of a component count:
/// nested components and core modules inside it are skipped.
pub fn detect(bytes: &[u8]) -> Result<World, NotRunnable> {
    if !Parser::is_component(bytes) {
        if Parser::is_core_wasm(bytes) {
            return Err(NotRunnable::CoreModule);
        }
        return Err(NotRunnable::NotWasm {
            starts_with: describe_start(bytes),
        });
    }
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| NotRunnable::Malformed {
            reason: e.to_string(),
        })?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|e| NotRunnable::Malformed {
                        reason: e.to_string(),
                    })?;
                    exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    if exports.iter().any(|e| e.starts_with(HTTP_HANDLER)) {
        Ok(World::HttpHandler)
    } else if exports.iter().any(|e| e.starts_with(CLI_RUN)) {
        Ok(World::Command)
    } else {
        Err(NotRunnable::OtherWorld { exports })
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
    fn core_modules_are_named_as_such() {
        let err = detect(&fixture("core-module")).unwrap_err();
        assert_eq!(err, NotRunnable::CoreModule);
        assert!(err.to_string().contains("core WebAssembly module"));
        assert!(err.to_string().contains("wasi:http/incoming-handler"));
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
