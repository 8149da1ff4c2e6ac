//! Platform services a guest imports beside WASI, one [`Platform`] per
//! container shared by all of its instances:
//! - [`config`]: `wasi:config/store` at `0.2.0-rc.1` (wasmtime's and
//!   wasmCloud's WIT) and `0.2.0-draft-2024-09-27` (Spin's, the same
//!   interface), from mounted ConfigMaps/Secrets and prefixed variables;
//! - [`keyvalue`]: `wasi:keyvalue@0.2.0-draft` on the container's store;
//! - [`logging`]: `wasi:logging@0.1.0-draft` into the container log.
//!
//! They are linked for every kind of component (wasi:http 0.2 and 0.3
//! handlers, commands and CGI programs); a component that imports none of
//! them pays nothing, and one that imports them with nothing configured
//! starts and finds an empty configuration and a memory store.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::guest::Deadline;
use crate::metrics::StoreCalls;
use crate::settings::{GuestLogLevel, Settings};

pub mod config;
pub mod keyvalue;
pub mod logging;

use config::ConfigSource;
use keyvalue::KeyvalueStore;

pub struct Platform {
    config: ConfigSource,
    /// The container's: every route of an app shares its store.
    keyvalue: Arc<KeyvalueStore>,
    log_level: GuestLogLevel,
    /// Bounds a call made outside a request's deadline (a command's run, a
    /// wasi:http 0.3 instance serving several requests).
    call_timeout: Duration,
}

impl Platform {
    /// The container's services from its settings; `guest_env` holds the
    /// variables WASMHTTP_CONFIG_ENV_PREFIX picks keys from. Fails, saying
    /// which setting, when a configured source cannot be used.
    pub fn new(
        settings: &Settings,
        guest_env: &[(String, String)],
        calls: Arc<StoreCalls>,
    ) -> Result<Self> {
        let keyvalue = Arc::new(KeyvalueStore::new(settings, calls)?);
        Self::with_store(settings, guest_env, keyvalue)
    }

    /// One route's services: its own configuration sources, log level and
    /// timeout (route settings), the container's key-value store.
    pub fn for_route(&self, settings: &Settings, guest_env: &[(String, String)]) -> Result<Self> {
        Self::with_store(settings, guest_env, self.keyvalue.clone())
    }

    fn with_store(
        settings: &Settings,
        guest_env: &[(String, String)],
        keyvalue: Arc<KeyvalueStore>,
    ) -> Result<Self> {
        Ok(Self {
            config: ConfigSource::new(
                &settings.config_dirs,
                settings.config_env_prefix.as_deref(),
                guest_env,
            )?,
            keyvalue,
            log_level: settings.guest_log_level,
            call_timeout: settings.request_timeout,
        })
    }

    /// The defaults' services: no configuration, a memory store.
    pub fn unconfigured() -> Self {
        Self::new(&Settings::default(), &[], Arc::default()).expect("the defaults are usable")
    }

    /// The start-up line's words.
    pub fn describe(&self) -> String {
        format!(
            "wasi:config from {}; wasi:keyvalue {}; wasi:logging at {}",
            self.config.describe(),
            self.keyvalue.describe(),
            self.log_level.name()
        )
    }
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// One platform for all a container's instances: two are the same only if
/// they are one.
impl PartialEq for Platform {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Platform {}

/// What the host functions see of a guest's store.
pub struct PlatformView<'a> {
    pub table: &'a mut ResourceTable,
    pub platform: &'a Platform,
    /// The request's, when the store serves one request.
    pub deadline: Option<Deadline>,
}

impl PlatformView<'_> {
    fn deadline(&self) -> Deadline {
        self.deadline
            .unwrap_or_else(|| Deadline::after(self.platform.call_timeout))
    }
}

struct Services;

impl HasData for Services {
    type Data<'a> = PlatformView<'a>;
}

/// Links the services' interfaces; `view` finds them in a store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> PlatformView<'_>,
) -> Result<()> {
    keyvalue::bindings::Imports::add_to_linker::<T, Services>(linker, view)?;
    config::bindings::Imports::add_to_linker::<T, Services>(linker, view)?;
    config::spin_bindings::Imports::add_to_linker::<T, Services>(linker, view)?;
    logging::bindings::Imports::add_to_linker::<T, Services>(linker, view)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use wit_component::WitPrinter;
    use wit_parser::Resolve;

    /// Each interface of `package` (found in `dir`) as WIT text, without docs.
    fn interfaces(dir: &Path, package: &str) -> BTreeMap<String, String> {
        let mut resolve = Resolve::default();
        resolve.push_dir(dir).unwrap();
        let (_, found) = resolve
            .packages
            .iter()
            .find(|(_, p)| p.name.to_string() == package)
            .unwrap_or_else(|| panic!("{package} is not in {}", dir.display()));
        found
            .interfaces
            .iter()
            .map(|(name, id)| {
                let mut printer = WitPrinter::default();
                printer.emit_docs(false);
                printer.print_interface(&resolve, *id).unwrap();
                (name.clone(), printer.output.to_string())
            })
            .collect()
    }

    fn ours(dir: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("wit").join(dir)
    }

    /// The host's bindings come from shim/wit; guests are built against the
    /// standards' WIT as wasmtime's crates ship it: they must say the same.
    #[test]
    fn the_hosts_wit_says_what_wasmtimes_crates_ship() {
        let host = interfaces(&ours("keyvalue"), "wasi:keyvalue@0.2.0-draft");
        let crates = interfaces(
            Path::new(wasmhttp_fixtures::WASI_KEYVALUE_WIT),
            "wasi:keyvalue@0.2.0-draft",
        );
        assert_eq!(
            host.keys().collect::<Vec<_>>(),
            ["atomics", "batch", "store"]
        );
        assert!(
            host["atomics"]
                .contains("increment: func(bucket: borrow<bucket>, key: string, delta: u64)"),
            "{}",
            host["atomics"]
        );
        for (name, body) in &host {
            assert_eq!(Some(body), crates.get(name), "wasi:keyvalue/{name}");
        }
        let config = interfaces(&ours("config"), "wasi:config@0.2.0-rc.1");
        let crates = interfaces(
            Path::new(wasmhttp_fixtures::WASI_CONFIG_WIT),
            "wasi:config@0.2.0-rc.1",
        );
        assert_eq!(config, crates);
        // Spin's version is the same interface under another version
        let spin = interfaces(&ours("config-spin"), "wasi:config@0.2.0-draft-2024-09-27");
        assert_eq!(spin, config);
    }
}
