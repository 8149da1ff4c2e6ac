//! wasi:keyvalue@0.2.0-draft (`store`, `atomics`, `batch`) on the
//! container's store (WASMHTTP_KEYVALUE): [`memory`] or [`redis`]. A guest
//! opens only the buckets WASMHTTP_KEYVALUE_BUCKETS names. Every call is
//! bounded by its request's deadline; a store that fails or cannot be reached
//! is the WIT's `other` error with the reason, never a trap and never a hung
//! request. Calls and errors are counted by operation; failures are logged
//! at most once per [`COMPLAINT_EVERY`], with how many there were.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use wasmtime::component::Resource;

use super::PlatformView;
use crate::guest::Deadline;
use crate::metrics::{StoreCalls, StoreOperation};
use crate::settings::{KeyvalueBackend, Settings};

pub mod memory;
pub mod redis;

pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/keyvalue",
        world: "wasi:keyvalue/imports",
        imports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
        },
    });
}

use bindings::wasi::keyvalue::{atomics, batch, store};
use store::{Error, KeyResponse};

/// A backend's answer: the reason, for a person, when it failed.
pub type StoreResult<T> = Result<T, String>;

/// One page of `list-keys`.
#[derive(Debug, Default)]
pub struct Page {
    pub keys: Vec<String>,
    pub cursor: Option<u64>,
}

/// An open bucket, as the guest holds it.
pub struct Bucket {
    name: String,
}

/// Failures are said in the container log at most this often.
const COMPLAINT_EVERY: Duration = Duration::from_secs(10);

pub struct KeyvalueStore {
    backend: Backend,
    buckets: Vec<String>,
    calls: Arc<StoreCalls>,
    complaints: Complaints,
}

enum Backend {
    Off,
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

impl KeyvalueStore {
    pub fn new(settings: &Settings, calls: Arc<StoreCalls>) -> Result<Self> {
        let backend = match &settings.keyvalue {
            KeyvalueBackend::Off => Backend::Off,
            KeyvalueBackend::Memory => {
                Backend::Memory(memory::MemoryStore::new(settings.keyvalue_memory_limit))
            }
            KeyvalueBackend::Redis(address) => Backend::Redis(redis::RedisStore::new(
                address,
                settings.keyvalue_password.as_ref(),
                settings.request_timeout,
            )?),
        };
        Ok(Self {
            backend,
            buckets: settings.keyvalue_buckets.clone(),
            calls,
            complaints: Complaints::default(),
        })
    }

    /// For the start-up line: where the buckets live (no password).
    pub fn describe(&self) -> String {
        let buckets = self.buckets.join(", ");
        match &self.backend {
            Backend::Off => "off".into(),
            Backend::Memory(_) => format!("memory (buckets {buckets})"),
            Backend::Redis(redis) => format!("{} (buckets {buckets})", redis.address()),
        }
    }

    /// Runs one call within `deadline`, counts it, and says a failure.
    async fn call<T>(
        &self,
        operation: StoreOperation,
        deadline: Deadline,
        work: impl Future<Output = StoreResult<T>>,
    ) -> Result<T, Error> {
        let outcome = match deadline.bound(work).await {
            Ok(outcome) => outcome,
            Err(_) => Err("the call did not finish before the request's deadline".to_string()),
        };
        self.calls.called(operation, outcome.is_err());
        match outcome {
            Ok(value) => {
                self.complaints.succeeded();
                Ok(value)
            }
            Err(reason) => {
                self.complaints.failed(operation, &reason);
                Err(Error::Other(reason))
            }
        }
    }
}

/// Calls `$memory` or `$redis` (an async block's body) with the backend bound
/// to `$backend`.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $memory:expr, $redis:expr) => {
        match &$store.backend {
            Backend::Memory($backend) => $memory,
            Backend::Redis($backend) => $redis,
            // no bucket can be open without a store
            Backend::Off => Err("WASMHTTP_KEYVALUE is off".to_string()),
        }
    };
}

impl PlatformView<'_> {
    fn store(&self) -> &KeyvalueStore {
        &self.platform.keyvalue
    }

    fn bucket_name(&self, bucket: &Resource<Bucket>) -> Result<String, Error> {
        self.table
            .get(bucket)
            .map(|bucket| bucket.name.clone())
            .map_err(|err| Error::Other(format!("not a bucket: {err}")))
    }
}

impl store::Host for PlatformView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
        let store = &self.platform.keyvalue;
        let exists = !matches!(store.backend, Backend::Off)
            && store.buckets.iter().any(|bucket| *bucket == identifier);
        store.calls.called(StoreOperation::Open, !exists);
        if !exists {
            return Err(Error::NoSuchStore);
        }
        self.table
            .push(Bucket { name: identifier })
            .map_err(|err| Error::Other(err.to_string()))
    }
}

impl store::HostBucket for PlatformView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        store
            .call(StoreOperation::Get, self.deadline(), async {
                on_backend!(store, b => b.get(&name, &key), b.get(&name, &key).await)
            })
            .await
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        store
            .call(StoreOperation::Set, self.deadline(), async {
                on_backend!(store, b => b.set(&name, &key, value), b.set(&name, &key, value).await)
            })
            .await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        let keys = [key];
        store
            .call(StoreOperation::Delete, self.deadline(), async {
                on_backend!(store, b => b.delete_many(&name, &keys), b.delete_many(&name, &keys).await)
            })
            .await
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        store
            .call(StoreOperation::Exists, self.deadline(), async {
                on_backend!(store, b => b.exists(&name, &key), b.exists(&name, &key).await)
            })
            .await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<KeyResponse, Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        let page = store
            .call(StoreOperation::ListKeys, self.deadline(), async {
                on_backend!(store, b => b.list_keys(&name, cursor), b.list_keys(&name, cursor).await)
            })
            .await?;
        Ok(KeyResponse {
            keys: page.keys,
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for PlatformView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        store
            .call(StoreOperation::Increment, self.deadline(), async {
                on_backend!(store, b => b.increment(&name, &key, delta), b.increment(&name, &key, delta).await)
            })
            .await
    }
}

impl batch::Host for PlatformView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        let values = store
            .call(StoreOperation::GetMany, self.deadline(), async {
                on_backend!(store, b => b.get_many(&name, &keys), b.get_many(&name, &keys).await)
            })
            .await?;
        Ok(keys
            .into_iter()
            .zip(values)
            .map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        store
            .call(StoreOperation::SetMany, self.deadline(), async {
                on_backend!(store, b => b.set_many(&name, key_values), b.set_many(&name, key_values).await)
            })
            .await
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), Error> {
        let name = self.bucket_name(&bucket)?;
        let store = self.store();
        store
            .call(StoreOperation::DeleteMany, self.deadline(), async {
                on_backend!(store, b => b.delete_many(&name, &keys), b.delete_many(&name, &keys).await)
            })
            .await
    }
}

/// A counter's value as both backends keep it: decimal text (Redis' INCRBY
/// semantics), a missing key 0.
pub struct Counter(i64);

impl Counter {
    pub fn parse(value: Option<&[u8]>) -> StoreResult<Self> {
        match value {
            None => Ok(Self(0)),
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .map(Self)
                .ok_or_else(|| "the value is not a number, so it cannot be incremented".into()),
        }
    }

    /// A delta the server's signed 64-bit counters take.
    pub fn delta(delta: u64) -> StoreResult<i64> {
        i64::try_from(delta).map_err(|_| format!("the delta {delta} is over {}", i64::MAX))
    }

    pub fn add(self, delta: u64) -> StoreResult<u64> {
        let sum = self
            .0
            .checked_add(Self::delta(delta)?)
            .ok_or("the increment overflows the counter")?;
        u64::try_from(sum).map_err(|_| format!("the value is negative: {sum}"))
    }
}

/// Says failures without flooding: the first at once, then one line per
/// [`COMPLAINT_EVERY`] with how many failed since, and one when calls succeed again.
#[derive(Default)]
struct Complaints(Mutex<ComplaintState>);

#[derive(Default)]
struct ComplaintState {
    last_line: Option<Instant>,
    unsaid: u64,
    failing_since_line: u64,
}

impl Complaints {
    fn failed(&self, operation: StoreOperation, reason: &str) {
        let mut state = self.0.lock().unwrap();
        state.failing_since_line += 1;
        if state
            .last_line
            .is_some_and(|at| at.elapsed() < COMPLAINT_EVERY)
        {
            state.unsaid += 1;
            return;
        }
        let more = match state.unsaid {
            0 => String::new(),
            n => format!(" ({n} more failed calls since the last line)"),
        };
        crate::say!(
            "wasmhttp: keyvalue {} failed: {reason}{more}",
            operation.name()
        );
        state.last_line = Some(Instant::now());
        state.unsaid = 0;
    }

    fn succeeded(&self) {
        let mut state = self.0.lock().unwrap();
        if state.failing_since_line == 0 {
            return;
        }
        crate::say!(
            "wasmhttp: keyvalue calls succeed again ({} failed before)",
            state.failing_since_line
        );
        *state = ComplaintState::default();
    }
}
