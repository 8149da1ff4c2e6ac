//! wasi:logging@0.1.0-draft: `log(level, context, message)` is one line in
//! the container log (what `kubectl logs` shows), `[level] context: message`,
//! when its level is at least WASMHTTP_GUEST_LOG_LEVEL. A message's line
//! breaks are written as `\n`, so one call is one line.

use super::PlatformView;
use crate::settings::GuestLogLevel;

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/logging",
        world: "wasi:logging/imports",
    });
}

use bindings::wasi::logging::logging::{self, Level};

impl From<Level> for GuestLogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => GuestLogLevel::Trace,
            Level::Debug => GuestLogLevel::Debug,
            Level::Info => GuestLogLevel::Info,
            Level::Warn => GuestLogLevel::Warn,
            Level::Error => GuestLogLevel::Error,
            Level::Critical => GuestLogLevel::Critical,
        }
    }
}

/// The line written for one call.
pub fn line(level: GuestLogLevel, context: &str, message: &str) -> String {
    let one_line = |text: &str| text.replace('\r', "\\r").replace('\n', "\\n");
    match context {
        "" => format!("[{}] {}", level.name(), one_line(message)),
        context => format!(
            "[{}] {}: {}",
            level.name(),
            one_line(context),
            one_line(message)
        ),
    }
}

impl logging::Host for PlatformView<'_> {
    fn log(&mut self, level: Level, context: String, message: String) {
        let level = GuestLogLevel::from(level);
        if level >= self.platform.log_level {
            crate::say!("{}", line(level, &context, &message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_is_one_line() {
        assert_eq!(line(GuestLogLevel::Warn, "db", "slow"), "[warn] db: slow");
        assert_eq!(line(GuestLogLevel::Info, "", "a\nb"), "[info] a\\nb");
        assert!(GuestLogLevel::Critical > GuestLogLevel::Error);
        assert!(GuestLogLevel::Off > GuestLogLevel::Critical);
    }
}
