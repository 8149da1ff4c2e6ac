//! WASMHTTP_KEYVALUE=redis://…: buckets on a Redis or Valkey server, bucket
//! `b`'s key `k` stored as `b:k`. One multiplexed connection per container
//! (redis' ConnectionManager: every request's calls are pipelined onto it,
//! and it reconnects by itself when the server comes back), never a
//! connection per request. The connection is the platform's, made by the
//! host: it does not go through the guest's outbound allow-list, and the
//! guest names no server, so it can reach no other.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisConnectionInfo};

use super::{Counter, Page, StoreResult};
use crate::settings::{RedisAddress, Secret};

/// Keys one SCAN step is asked to look at.
const SCAN_COUNT: u64 = 1000;

pub struct RedisStore {
    address: RedisAddress,
    connection: ConnectionManager,
}

impl RedisStore {
    /// Connects lazily: the container starts whether or not the server is
    /// up, and the first call (or the first after it comes back) connects.
    pub fn new(
        address: &RedisAddress,
        password: Option<&Secret>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut handshake = RedisConnectionInfo::default().set_db(address.db);
        if let Some(password) = password {
            handshake = handshake.set_password(password.expose());
        }
        let info = (address.host.clone(), address.port)
            .into_connection_info()?
            .set_redis_settings(handshake);
        let client = redis::Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2).min(timeout)))
            .set_response_timeout(Some(timeout))
            // one quick retry: a call waits for the server at most until its
            // deadline, and the next call tries again
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            address: address.clone(),
            connection,
        })
    }

    pub fn address(&self) -> &RedisAddress {
        &self.address
    }

    fn reason(&self, err: redis::RedisError) -> String {
        // a RedisError says what failed, never the password
        if err.is_connection_refusal() || err.is_io_error() || err.is_connection_dropped() {
            format!("the store at {} cannot be reached: {err}", self.address)
        } else if err.is_timeout() {
            format!(
                "the store at {} did not answer in time: {err}",
                self.address
            )
        } else {
            format!(
                "the store at {} answered with an error: {err}",
                self.address
            )
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> StoreResult<T> {
        let mut connection = self.connection.clone();
        cmd.query_async(&mut connection)
            .await
            .map_err(|err| self.reason(err))
    }

    pub async fn get(&self, bucket: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query(redis::cmd("GET").arg(stored(bucket, key))).await
    }

    pub async fn set(&self, bucket: &str, key: &str, value: Vec<u8>) -> StoreResult<()> {
        self.query(redis::cmd("SET").arg(stored(bucket, key)).arg(value))
            .await
    }

    pub async fn exists(&self, bucket: &str, key: &str) -> StoreResult<bool> {
        self.query(redis::cmd("EXISTS").arg(stored(bucket, key)))
            .await
    }

    /// SCAN's cursor is the WIT's: 0 back from the server means done.
    pub async fn list_keys(&self, bucket: &str, cursor: Option<u64>) -> StoreResult<Page> {
        let (next, keys): (u64, Vec<String>) = self
            .query(
                redis::cmd("SCAN")
                    .arg(cursor.unwrap_or(0))
                    .arg("MATCH")
                    // bucket names hold no glob characters (the setting's rule)
                    .arg(format!("{bucket}:*"))
                    .arg("COUNT")
                    .arg(SCAN_COUNT),
            )
            .await?;
        let prefix = format!("{bucket}:");
        Ok(Page {
            keys: keys
                .into_iter()
                .filter_map(|key| key.strip_prefix(&prefix).map(str::to_string))
                .collect(),
            cursor: (next != 0).then_some(next),
        })
    }

    /// INCRBY: atomic in the server, whoever else increments the key.
    pub async fn increment(&self, bucket: &str, key: &str, delta: u64) -> StoreResult<u64> {
        let delta = Counter::delta(delta)?;
        let value: i64 = self
            .query(redis::cmd("INCRBY").arg(stored(bucket, key)).arg(delta))
            .await?;
        u64::try_from(value).map_err(|_| format!("the value of {key:?} is negative: {value}"))
    }

    pub async fn get_many(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> StoreResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(stored(bucket, key));
        }
        self.query(&cmd).await
    }

    /// One pipeline (MULTI/EXEC: all the writes or none) in one round trip.
    pub async fn set_many(&self, bucket: &str, pairs: Vec<(String, Vec<u8>)>) -> StoreResult<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, value) in pairs {
            pipe.cmd("SET")
                .arg(stored(bucket, &key))
                .arg(value)
                .ignore();
        }
        let mut connection = self.connection.clone();
        pipe.query_async::<()>(&mut connection)
            .await
            .map_err(|err| self.reason(err))
    }

    pub async fn delete_many(&self, bucket: &str, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        for key in keys {
            cmd.arg(stored(bucket, key));
        }
        self.query::<u64>(&cmd).await.map(drop)
    }
}

/// The server's key for a bucket's key.
fn stored(bucket: &str, key: &str) -> String {
    format!("{bucket}:{key}")
}
