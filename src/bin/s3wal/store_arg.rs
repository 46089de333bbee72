//! Which store a command works on.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use s3wal::store::{DirStore, ObjectStore, S3Error, S3Options, S3Store};

use crate::UsageError;

/// `--dir PATH` or `--s3 s3://bucket/prefix [--endpoint URL]`.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// A local directory holding the log (created if missing).
    #[arg(long, value_name = "PATH", conflicts_with = "s3")]
    pub dir: Option<PathBuf>,
    /// An S3 location: s3://bucket or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub s3: Option<String>,
    /// An S3-compatible endpoint (path-style addressing), e.g. http://127.0.0.1:9000.
    #[arg(long, value_name = "URL", requires = "s3")]
    pub endpoint: Option<String>,
}

impl StoreArgs {
    /// Opens the store; `default_dir` is used when neither flag is given.
    /// An S3 store is checked (endpoint, credentials, bucket) before use.
    pub async fn open(&self, default_dir: Option<PathBuf>, pool_size: u32) -> anyhow::Result<Arc<dyn ObjectStore>> {
        if let Some(store) = self.s3_store(pool_size).await? {
            return Ok(Arc::new(store));
        }
        let dir = self
            .dir
            .clone()
            .or(default_dir)
            .ok_or_else(|| UsageError("give a store: --dir PATH or --s3 s3://bucket/prefix".into()))?;
        let store = DirStore::open(&dir).with_context(|| format!("cannot open directory store {}", dir.display()))?;
        Ok(Arc::new(store))
    }

    /// The S3 store itself, when `--s3` names one (the bench deletes with it).
    pub async fn s3_store(&self, pool_size: u32) -> anyhow::Result<Option<S3Store>> {
        match &self.s3 {
            Some(url) => Ok(Some(connect_s3(url, self.endpoint.as_deref(), pool_size).await?)),
            None => Ok(None),
        }
    }
}

/// Splits `s3://bucket/prefix` into its parts.
pub fn parse_s3_url(url: &str) -> Result<(String, String), UsageError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| UsageError(format!("{url:?} is not an s3:// URL (expected s3://bucket/prefix)")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(UsageError(format!("{url:?} names no bucket")));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

async fn connect_s3(url: &str, endpoint: Option<&str>, pool_size: u32) -> anyhow::Result<S3Store> {
    let (bucket, prefix) = parse_s3_url(url)?;
    let options = S3Options {
        bucket,
        prefix,
        endpoint: endpoint.map(String::from),
        force_path_style: endpoint.is_some(),
        pool_size: pool_size.max(1) as usize,
        ..S3Options::default()
    };
    let store = match S3Store::connect(options).await {
        Ok(store) => store,
        Err(e @ (S3Error::InvalidOption { .. } | S3Error::DirectoryBucket { .. })) => {
            return Err(UsageError(e.to_string()).into())
        }
        Err(e) => return Err(e.into()),
    };
    store.check().await.with_context(|| format!("cannot use {url}"))?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert_eq!(parse_s3_url("s3://b/p/q/").unwrap(), ("b".into(), "p/q".into()));
        assert!(parse_s3_url("http://b").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
    }
}
