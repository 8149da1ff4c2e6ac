//! wasi:config's values, the Kubernetes way: a mounted ConfigMap or Secret is a
//! directory whose file names are keys and whose contents are values
//! (WASMHTTP_CONFIG_DIRS), and container variables under a prefix are keys too
//! (WASMHTTP_CONFIG_ENV_PREFIX). Directories are read at every call, so an
//! update kubelet writes into a mounted ConfigMap is seen at the next call.
//! Errors name the key and the directory, never a value.

use std::io::ErrorKind;
use std::path::PathBuf;

use anyhow::{Result, bail};

/// Why a value could not be read (wasi:config's `io` error).
pub type ConfigError = String;

#[derive(Debug, Default)]
pub struct ConfigSource {
    dirs: Vec<PathBuf>,
    /// The prefixed variables, the prefix taken off.
    env: Vec<(String, String)>,
}

impl ConfigSource {
    /// Fails when a directory is missing: a misspelt mount would otherwise
    /// look like an empty configuration.
    pub fn new(
        dirs: &[PathBuf],
        env_prefix: Option<&str>,
        env: &[(String, String)],
    ) -> Result<Self> {
        Self::check(dirs)?;
        let env = match env_prefix {
            Some(prefix) => env
                .iter()
                .filter_map(|(name, value)| {
                    let key = name.strip_prefix(prefix)?;
                    (!key.is_empty()).then(|| (key.to_string(), value.clone()))
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Self {
            dirs: dirs.to_vec(),
            env,
        })
    }

    /// Fails, naming the setting, when a directory is not there; the shim
    /// checks this before the container counts as started.
    pub fn check(dirs: &[PathBuf]) -> Result<()> {
        for dir in dirs {
            if !dir.is_dir() {
                bail!(
                    "WASMHTTP_CONFIG_DIRS names {}, which is not a directory in the container \
                     (is the ConfigMap or Secret mounted there?)",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// How many places values come from (for the start-up line).
    pub fn describe(&self) -> String {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        format!(
            "{} director{} ({}), {} variable{}",
            dirs.len(),
            if dirs.len() == 1 { "y" } else { "ies" },
            dirs.join(", "),
            self.env.len(),
            if self.env.len() == 1 { "" } else { "s" },
        )
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, ConfigError> {
        if is_file_name(key) {
            for dir in &self.dirs {
                let path = dir.join(key);
                match std::fs::read(&path) {
                    Ok(bytes) => return text(bytes, key, dir).map(Some),
                    Err(err) if matches!(err.kind(), ErrorKind::NotFound) => continue,
                    // a sub-directory is not a key
                    Err(_) if path.is_dir() => continue,
                    Err(err) => {
                        return Err(format!(
                            "reading the key {key:?} in {}: {err}",
                            dir.display()
                        ));
                    }
                }
            }
        }
        Ok(self
            .env
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone()))
    }

    /// Every key once, the first source's value, sorted by key.
    pub fn get_all(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut all: std::collections::BTreeMap<String, String> = Default::default();
        for dir in &self.dirs {
            let entries = std::fs::read_dir(dir)
                .map_err(|err| format!("listing {}: {err}", dir.display()))?;
            for entry in entries {
                let entry = entry.map_err(|err| format!("listing {}: {err}", dir.display()))?;
                let Some(key) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                // kubelet's `..data` and timestamped directories, and any
                // sub-directory, are not keys; a key is a file or a link to one
                if !is_file_name(&key) || all.contains_key(&key) || !entry.path().is_file() {
                    continue;
                }
                let bytes = std::fs::read(entry.path()).map_err(|err| {
                    format!("reading the key {key:?} in {}: {err}", dir.display())
                })?;
                let value = text(bytes, &key, dir)?;
                all.insert(key, value);
            }
        }
        for (key, value) in &self.env {
            all.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Ok(all.into_iter().collect())
    }
}

/// A key that names a file in the directory itself: not empty, no `/`, not
/// hidden (kubelet's bookkeeping starts with `..`).
fn is_file_name(key: &str) -> bool {
    !key.is_empty() && !key.contains('/') && !key.starts_with('.') && !key.contains('\0')
}

fn text(bytes: Vec<u8>, key: &str, dir: &std::path::Path) -> Result<String, ConfigError> {
    String::from_utf8(bytes)
        .map_err(|_| format!("the key {key:?} in {} is not UTF-8 text", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory laid out as kubelet mounts a ConfigMap: the keys are links
    /// into `..data`, itself a link to a timestamped directory.
    fn kubelet_dir(pairs: &[(&str, &str)]) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        let stamped = dir.path.join("..2026_12_03_10_00_00.000000001");
        std::fs::create_dir(&stamped).unwrap();
        for (key, value) in pairs {
            std::fs::write(stamped.join(key), value).unwrap();
        }
        std::os::unix::fs::symlink(&stamped, dir.path.join("..data")).unwrap();
        for (key, _) in pairs {
            std::os::unix::fs::symlink(format!("..data/{key}"), dir.path.join(key)).unwrap();
        }
        dir
    }

    mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "wasmhttp-config-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Self { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn directories_first_then_prefixed_variables() {
        let config = kubelet_dir(&[("greeting", "hello"), ("shared", "from the configmap")]);
        let secret = kubelet_dir(&[("token", "s3cret"), ("shared", "from the secret")]);
        let env = vec![
            ("APP_region".to_string(), "eu".to_string()),
            ("APP_greeting".to_string(), "not this one".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let source = ConfigSource::new(
            &[config.path.clone(), secret.path.clone()],
            Some("APP_"),
            &env,
        )
        .unwrap();
        assert_eq!(source.get("greeting").unwrap().as_deref(), Some("hello"));
        assert_eq!(
            source.get("shared").unwrap().as_deref(),
            Some("from the configmap")
        );
        assert_eq!(source.get("token").unwrap().as_deref(), Some("s3cret"));
        assert_eq!(source.get("region").unwrap().as_deref(), Some("eu"));
        assert_eq!(source.get("missing").unwrap(), None);
        assert_eq!(source.get("OTHER").unwrap(), None);
        // kubelet's bookkeeping and paths are not keys
        assert_eq!(source.get("..data").unwrap(), None);
        assert_eq!(source.get("../etc/passwd").unwrap(), None);
        let all = source.get_all().unwrap();
        let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["greeting", "region", "shared", "token"]);
        assert!(all.contains(&("shared".into(), "from the configmap".into())));
    }

    #[test]
    fn an_update_written_the_way_kubelet_writes_it_is_seen() {
        let dir = kubelet_dir(&[("greeting", "hello")]);
        let source = ConfigSource::new(&[dir.path.clone()], None, &[]).unwrap();
        assert_eq!(source.get("greeting").unwrap().as_deref(), Some("hello"));
        let next = dir.path.join("..2026_12_03_10_05_00.000000002");
        std::fs::create_dir(&next).unwrap();
        std::fs::write(next.join("greeting"), "hi again").unwrap();
        let swap = dir.path.join("..data_tmp");
        std::os::unix::fs::symlink(&next, &swap).unwrap();
        std::fs::rename(&swap, dir.path.join("..data")).unwrap();
        assert_eq!(source.get("greeting").unwrap().as_deref(), Some("hi again"));
    }

    #[test]
    fn a_missing_directory_fails_the_start_and_a_bad_value_names_its_key_only() {
        let err = ConfigSource::new(&["/nonexistent/config".into()], None, &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/config"), "{err}");
        let dir = tempdir::Dir::new();
        std::fs::write(dir.path.join("binary"), [0xff, 0xfe, b's', b'3']).unwrap();
        let source = ConfigSource::new(&[dir.path.clone()], None, &[]).unwrap();
        let err = source.get("binary").unwrap_err();
        assert!(err.contains("\"binary\"") && err.contains("UTF-8"), "{err}");
        assert!(!err.contains("s3"), "{err}");
        assert!(source.get_all().is_err());
    }
}

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/config",
        world: "wasi:config/imports",
    });
}

/// Spin's version of the same interface.
pub mod spin_bindings {
    wasmtime::component::bindgen!({
        path: "wit/config-spin",
        world: "wasi:config/imports",
    });
}

/// Both versions' host functions, one implementation.
macro_rules! config_host {
    ($bindings:ident) => {
        impl $bindings::wasi::config::store::Host for super::PlatformView<'_> {
            fn get(
                &mut self,
                key: String,
            ) -> Result<Option<String>, $bindings::wasi::config::store::Error> {
                self.platform
                    .config
                    .get(&key)
                    .map_err($bindings::wasi::config::store::Error::Io)
            }

            fn get_all(
                &mut self,
            ) -> Result<Vec<(String, String)>, $bindings::wasi::config::store::Error> {
                self.platform
                    .config
                    .get_all()
                    .map_err($bindings::wasi::config::store::Error::Io)
            }
        }
    };
}

config_host!(bindings);
config_host!(spin_bindings);
