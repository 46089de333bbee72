//! Objects in an S3 bucket (or an S3-compatible server), through aws-sdk-s3.
//!
//! - Credentials come from the standard aws-config chain (environment
//!   variables `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profile files,
//!   web identity, ECS, EC2 instance metadata). SSO profiles need aws-config's
//!   `sso` feature, which this build leaves out.
//! - The SDK's own retries are off: the state machine owns retries and must
//!   see every outcome. Connect and operation timeouts are set.
//! - The HTTP client is the SDK's hyper 1.x connection pool, bounded to
//!   [`S3Options::pool_size`] connections per host.
//! - Every key is relative to the store's prefix.
//! - Failures are mapped by one pure function, [`classify`], from the HTTP
//!   status, the S3 error code and the kind of SDK error.
//!
//! S3 Express directory buckets (`…--x-s3`) are refused: they list keys in no
//! particular order, so recovery's one-LIST rule does not hold there.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::pool::{ConnectionPool, OriginKey};
use aws_smithy_http_client::tls;
use bytes::Bytes;
use tracing::{debug, debug_span, warn, Instrument};

use super::{metadata_value, GetOutcome, ListEntry, ListPage, ObjectStore};
use crate::format::{self, TAG_METADATA_KEY};
use crate::protocol::{Fault, HeadOutcome, PutOutcome};

/// The suffix of S3 Express One Zone directory bucket names.
const DIRECTORY_BUCKET_SUFFIX: &str = "--x-s3";
/// The region used when none is given and the environment names none.
const FALLBACK_REGION: &str = "us-east-1";

/// How to reach a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// The bucket's name.
    pub bucket: String,
    /// Where the log lives inside the bucket: `""`, `"a/b"` and `"a/b/"` all
    /// work (the last two name the same place).
    pub prefix: String,
    /// An endpoint URL for an S3-compatible server (`http://127.0.0.1:9000`);
    /// `None` uses AWS's endpoint for the region (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// The region; `None` takes it from the environment (`AWS_REGION`, the
    /// profile), else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which most
    /// S3-compatible servers need.
    pub force_path_style: bool,
    /// Most connections open to the store at once (the driver's
    /// `target_pool_size`). At least 1.
    pub pool_size: usize,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest a whole request may take, connection and body included.
    pub operation_timeout: Duration,
}

impl S3Options {
    /// Options for `bucket` with every other field at its default.
    pub fn new(bucket: impl Into<String>) -> S3Options {
        S3Options { bucket: bucket.into(), ..S3Options::default() }
    }
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            force_path_style: false,
            pool_size: 100,
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(30),
        }
    }
}

/// Why an [`S3Store`] could not be built, or why [`S3Store::check`] failed.
/// No variant carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// An option is out of range.
    #[error("invalid S3 option `{field}`: {problem}")]
    InvalidOption {
        /// The field of [`S3Options`].
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The bucket is an S3 Express One Zone directory bucket.
    #[error(
        "bucket {bucket:?} is an S3 Express directory bucket (its name ends in `--x-s3`); s3wal cannot use it: \
         directory buckets LIST keys in no particular order, so finding the end of the log with one LIST does \
         not hold there. Use a general purpose bucket"
    )]
    DirectoryBucket {
        /// The bucket's name.
        bucket: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for S3: {0}")]
    HttpClient(String),
    /// No TCP connection (or no answer at all) from the endpoint.
    #[error("cannot reach the S3 endpoint {endpoint}: {detail}")]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
    /// No credentials could be found.
    #[error(
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a profile, \
         web identity or instance role ({detail})"
    )]
    NoCredentials {
        /// Which providers were tried, and why each found nothing.
        detail: String,
    },
    /// The endpoint refused the credentials.
    #[error(
        "the S3 endpoint {endpoint} refused the credentials ({code}): check AWS_ACCESS_KEY_ID, \
         AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or the profile in use)"
    )]
    BadCredentials {
        /// The endpoint.
        endpoint: String,
        /// The S3 error code (`InvalidAccessKeyId`, `SignatureDoesNotMatch`, …).
        code: String,
    },
    /// The credentials are valid but may not list the bucket.
    #[error("access denied to bucket {bucket:?} at {endpoint} ({code}): the credentials lack permission to list it")]
    AccessDenied {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
        /// The S3 error code, or the HTTP status when there is none.
        code: String,
    },
    /// The bucket does not exist.
    #[error("no such bucket: {bucket:?} does not exist at {endpoint}")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
    },
    /// Anything else the probe ran into.
    #[error("S3 probe of bucket {bucket:?} at {endpoint} failed: {reason}")]
    Failed {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
        /// What happened.
        reason: String,
    },
}

/// A store in an S3 bucket. Clones share the client and its connections.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    pool: ConnectionPool,
    origin: Option<OriginKey>,
    bucket: String,
    /// Normalised: empty, or ending in `/`.
    prefix: String,
    /// For messages: the endpoint URL, or "AWS S3 (region …)".
    endpoint: String,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// `""` stays empty; anything else ends in exactly one `/` and starts without one.
fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

fn validate(options: &S3Options) -> Result<(), S3Error> {
    let invalid = |field, problem: &str| Err(S3Error::InvalidOption { field, problem: problem.to_string() });
    let bucket = options.bucket.as_str();
    if bucket.is_empty() {
        return invalid("bucket", "no bucket given");
    }
    if bucket.contains('/') {
        return invalid("bucket", "a bucket name cannot contain `/` (put the path in `prefix`)");
    }
    if bucket.ends_with(DIRECTORY_BUCKET_SUFFIX) {
        return Err(S3Error::DirectoryBucket { bucket: bucket.to_string() });
    }
    if options.pool_size == 0 {
        return invalid("pool_size", "must be at least 1");
    }
    if options.connect_timeout.is_zero() {
        return invalid("connect_timeout", "must be more than zero");
    }
    if options.operation_timeout.is_zero() {
        return invalid("operation_timeout", "must be more than zero");
    }
    if let Some(endpoint) = &options.endpoint {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return invalid("endpoint", "must be an http:// or https:// URL");
        }
    }
    Ok(())
}

impl S3Store {
    /// Builds a client for the bucket. Makes no request: call
    /// [`S3Store::check`] to find out whether the bucket can be reached.
    pub async fn connect(options: S3Options) -> Result<S3Store, S3Error> {
        validate(&options)?;
        let pool = ConnectionPool::builder()
            .max_connections_per_host(options.pool_size)
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https()
            .map_err(|e| S3Error::HttpClient(e.to_string()))?;
        let http_client =
            aws_smithy_http_client::pool::Client::new(&pool).map_err(|e| S3Error::HttpClient(e.to_string()))?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(options.connect_timeout)
            .operation_timeout(options.operation_timeout)
            .operation_attempt_timeout(options.operation_timeout)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &options.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        // Without a region here, the loader asks the environment (and, on
        // EC2, the instance metadata) through the client above.
        let shared = loader.load().await;
        let region = shared.region().cloned().unwrap_or_else(|| Region::new(FALLBACK_REGION));
        let endpoint = match shared.endpoint_url() {
            Some(url) => without_userinfo(url),
            None => format!("AWS S3 (region {region})"),
        };
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .region(region)
            .force_path_style(options.force_path_style)
            .build();
        let origin = shared.endpoint_url().and_then(origin_of);
        Ok(S3Store {
            client: aws_sdk_s3::Client::from_conf(config),
            pool,
            origin,
            bucket: options.bucket,
            prefix: normalize_prefix(&options.prefix),
            endpoint,
        })
    }

    /// The SDK client, for what the store does not do (creating a bucket).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The normalised prefix: empty, or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `(connections in use, limit)` towards a custom endpoint; `None` for
    /// AWS's own endpoints (their host depends on the bucket).
    pub fn connection_capacity(&self) -> Option<(usize, usize)> {
        let origin = self.origin.as_ref()?;
        let stats = self.pool.origin_stats(origin);
        stats.capacity().map(|c| (c.in_use(), c.limit()))
    }

    /// A cheap probe (a LIST of at most one key under the prefix) that names
    /// what is wrong: the endpoint unreachable, the credentials refused, the
    /// bucket missing or not listable.
    pub async fn check(&self) -> Result<(), S3Error> {
        let request = self.client.list_objects_v2().bucket(&self.bucket).prefix(&self.prefix).max_keys(1);
        let result = request.send().instrument(debug_span!("s3_check", bucket = %self.bucket)).await;
        let Err(error) = result else { return Ok(()) };
        let detail = error_detail(&error);
        let endpoint = self.endpoint.clone();
        let bucket = self.bucket.clone();
        let code = error.code().map(String::from);
        let status = error.raw_response().map(|r| r.status().as_u16());
        warn!(bucket = %bucket, endpoint = %endpoint, %detail, "S3 probe failed");
        let kind = kind_of(&error);
        if matches!(kind, ErrorKind::CredentialsFailed | ErrorKind::CredentialsTimedOut) {
            // The request never left: say so, rather than "cannot reach".
            return Err(S3Error::NoCredentials { detail });
        }
        Err(match classify(Op::List, status, code.as_deref(), kind) {
            Classified::Fault(Fault::ConnectionFailed) => S3Error::Unreachable { endpoint, detail },
            Classified::Fault(Fault::TimedOut) => {
                S3Error::Unreachable { endpoint, detail: format!("no answer in time ({detail})") }
            }
            Classified::Refused(Refusal::BadCredentials { code }) => S3Error::BadCredentials { endpoint, code },
            Classified::Refused(Refusal::AccessDenied { code }) => S3Error::AccessDenied {
                bucket,
                endpoint,
                code: code.unwrap_or_else(|| status.map_or_else(|| "403".into(), |s| s.to_string())),
            },
            Classified::Refused(Refusal::NoSuchBucket) => S3Error::NoSuchBucket { bucket, endpoint },
            Classified::Refused(Refusal::NoCredentials) => S3Error::NoCredentials { detail },
            Classified::Refused(Refusal::CannotSend) => {
                S3Error::Failed { bucket, endpoint, reason: format!("the request could not be made: {detail}") }
            }
            Classified::Refused(refusal) => S3Error::Failed { bucket, endpoint, reason: refusal.to_string() },
            Classified::Fault(fault) => S3Error::Failed { bucket, endpoint, reason: fault.to_string() },
            Classified::AlreadyExists | Classified::NotFound => {
                S3Error::Failed { bucket, endpoint, reason: format!("unexpected answer: {detail}") }
            }
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Turns an SDK error into its outcome, logging the detail the outcome drops.
    fn failure<E>(&self, op: Op, key: &str, error: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Classified
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = error.raw_response().map(|r| r.status().as_u16());
        let classified = classify(op, status, error.code(), kind_of(error));
        let detail = error_detail(error);
        match &classified {
            Classified::Refused(refusal) => {
                warn!(op = op.name(), key, ?status, code = error.code(), %detail, "S3 refused: {refusal}")
            }
            other => debug!(op = op.name(), key, ?status, code = error.code(), %detail, outcome = ?other, "S3 error"),
        }
        classified
    }

    fn fault(&self, op: Op, key: &str, classified: Classified) -> Fault {
        match classified {
            Classified::Fault(fault) => fault,
            Classified::Refused(refusal) => Fault::Rejected {
                reason: format!("{} s3://{}/{key} at {}: {refusal}", op.name(), self.bucket, self.endpoint),
            },
            Classified::AlreadyExists | Classified::NotFound => Fault::Rejected {
                reason: format!("{} s3://{}/{key}: unexpected {classified:?}", op.name(), self.bucket),
            },
        }
    }
}

/// The URL without `user:password@`, for messages.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn origin_of(url: &str) -> Option<OriginKey> {
    let uri: http::Uri = url.parse().ok()?;
    OriginKey::from_uri(&uri).ok()
}

/// The error and its causes on one line: `dispatch failure: io error: tcp
/// connect error: Connection refused (os error 111)`. Errors of the SDK carry
/// no credentials (the request's headers are not part of them).
fn error_detail(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their cause in their own message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    // One line: some causes list what they tried on lines of their own.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn kind_of<E, R>(error: &SdkError<E, R>) -> ErrorKind
where
    E: std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    if !matches!(error, SdkError::ServiceError(_) | SdkError::ResponseError(_)) {
        if let Some(kind) = credentials_problem(error) {
            return kind;
        }
    }
    match error {
        SdkError::ConstructionFailure(_) => ErrorKind::Construction,
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => ErrorKind::DispatchTimeout,
        SdkError::DispatchFailure(d) if d.is_user() => ErrorKind::DispatchUser,
        SdkError::DispatchFailure(_) => ErrorKind::Dispatch,
        SdkError::ResponseError(_) => ErrorKind::Response,
        SdkError::ServiceError(_) => ErrorKind::Service,
        // `SdkError` is non-exhaustive: treat anything new as ambiguous.
        _ => ErrorKind::Dispatch,
    }
}

/// Whether the request failed for want of credentials (the SDK reports it as
/// a dispatch or construction failure, with a `CredentialsError` among the causes).
fn credentials_problem(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            return Some(match credentials {
                CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_) => {
                    ErrorKind::NoCredentials
                }
                CredentialsError::ProviderTimedOut(_) => ErrorKind::CredentialsTimedOut,
                _ => ErrorKind::CredentialsFailed,
            });
        }
        next = e.source();
    }
    None
}

/// Which request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// The conditional PUT.
    Put,
    /// HEAD of an object.
    Head,
    /// GET of an object.
    Get,
    /// ListObjectsV2.
    List,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Head => "HEAD",
            Op::Get => "GET",
            Op::List => "LIST",
        }
    }
}

/// The kind of SDK error, as far as classification cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The request could not be built or signed (no region, a bad endpoint):
    /// it was never sent.
    Construction,
    /// No credentials provider is configured, or its configuration is
    /// invalid: never sent.
    NoCredentials,
    /// The credentials provider did not answer in time (instance metadata,
    /// STS): never sent, may pass later.
    CredentialsTimedOut,
    /// The credentials provider failed: never sent, may pass later.
    CredentialsFailed,
    /// The operation or attempt timeout fired.
    Timeout,
    /// The connector timed out (connect or read).
    DispatchTimeout,
    /// The connector refused the request as malformed: never sent.
    DispatchUser,
    /// The connection failed or was reset: the request may have been sent.
    Dispatch,
    /// A response came but could not be read.
    Response,
    /// The service answered with an error.
    Service,
}

/// What a failed request means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Classified {
    /// 412 on the conditional PUT: the key exists.
    AlreadyExists,
    /// 404 on HEAD/GET: no such key.
    NotFound,
    /// A fault the state machine handles (retries, ambiguity).
    Fault(Fault),
    /// A refusal that retrying cannot fix; becomes [`Fault::Rejected`].
    Refused(Refusal),
}

/// Why the store refused, in words a user can act on. Never holds credentials
/// or the server's free-text message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The credentials are unknown, wrongly signed or expired.
    BadCredentials {
        /// The S3 error code.
        code: String,
    },
    /// The credentials lack permission (or, for a bodiless 403, may be wrong).
    AccessDenied {
        /// The S3 error code, if the answer had one.
        code: Option<String>,
    },
    /// The bucket does not exist.
    NoSuchBucket,
    /// No credentials were found.
    NoCredentials,
    /// The bucket is in another region than the client's.
    WrongRegion {
        /// The S3 error code, or the status.
        code: String,
    },
    /// The local clock is too far from the server's.
    ClockSkew,
    /// The server does not implement something s3wal needs (conditional
    /// writes with `If-None-Match: *`).
    Unsupported {
        /// The S3 error code.
        code: String,
    },
    /// The request could not be built or signed (no credentials, no region,
    /// invalid endpoint); it was never sent.
    CannotSend,
    /// Any other refusal.
    Other {
        /// The HTTP status, if an answer came.
        status: Option<u16>,
        /// The S3 error code, if the answer had one.
        code: Option<String>,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadCredentials { code } => write!(
                f,
                "the credentials were refused ({code}): check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and \
                 AWS_SESSION_TOKEN (or the profile in use)"
            ),
            Refusal::AccessDenied { code } => write!(
                f,
                "access denied ({}): the credentials lack permission, or are wrong",
                code.as_deref().unwrap_or("403")
            ),
            Refusal::NoSuchBucket => f.write_str("no such bucket"),
            Refusal::NoCredentials => f.write_str(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure a \
                 profile, web identity or instance role",
            ),
            Refusal::WrongRegion { code } => {
                write!(f, "the bucket is in another region than the client's ({code}): set the region")
            }
            Refusal::ClockSkew => f.write_str("the local clock is too far from the server's (RequestTimeTooSkewed)"),
            Refusal::Unsupported { code } => write!(
                f,
                "the server does not support this request ({code}); s3wal needs conditional writes \
                 (PUT with If-None-Match: *)"
            ),
            Refusal::CannotSend => {
                f.write_str("the request could not be built or signed (are credentials and a region configured?)")
            }
            Refusal::Other { status, code } => {
                f.write_str("refused")?;
                if let Some(status) = status {
                    write!(f, " with HTTP {status}")?;
                }
                if let Some(code) = code {
                    write!(f, " ({code})")?;
                }
                Ok(())
            }
        }
    }
}

/// Maps a failed request to its outcome: the heart of the S3 store.
///
/// `status` is the HTTP status when an answer came, `code` the S3 error code
/// when the answer had one (HEAD answers have no body, so no code).
pub(crate) fn classify(op: Op, status: Option<u16>, code: Option<&str>, kind: ErrorKind) -> Classified {
    let code = code.filter(|c| !c.is_empty());
    match kind {
        ErrorKind::Construction | ErrorKind::DispatchUser => return Classified::Refused(Refusal::CannotSend),
        ErrorKind::NoCredentials => return Classified::Refused(Refusal::NoCredentials),
        ErrorKind::Timeout | ErrorKind::DispatchTimeout | ErrorKind::CredentialsTimedOut => {
            return Classified::Fault(Fault::TimedOut)
        }
        ErrorKind::Dispatch | ErrorKind::CredentialsFailed => return Classified::Fault(Fault::ConnectionFailed),
        ErrorKind::Response | ErrorKind::Service => {}
    }
    let Some(status) = status else {
        // An error that claims an answer but has none: treat it as a lost answer.
        return Classified::Fault(Fault::ConnectionFailed);
    };
    if kind == ErrorKind::Response && status < 400 {
        // A success (or redirect) whose body could not be read: we cannot
        // tell what happened.
        return Classified::Fault(Fault::ConnectionFailed);
    }
    let refused = |r| Classified::Refused(r);
    let other = || Classified::Refused(Refusal::Other { status: Some(status), code: code.map(String::from) });
    match code {
        Some("PreconditionFailed") => {
            return if op == Op::Put { Classified::AlreadyExists } else { other() };
        }
        Some("ConditionalRequestConflict") | Some("OperationAborted") => return Classified::Fault(Fault::Conflict),
        Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequests") => {
            return Classified::Fault(Fault::Throttled)
        }
        Some("RequestTimeout") => return Classified::Fault(Fault::TimedOut),
        Some("BadDigest") => return Classified::Fault(Fault::BodyDamaged),
        Some("InternalError" | "ServiceUnavailable") => return Classified::Fault(Fault::ServerError { status }),
        Some("NotImplemented") => return refused(Refusal::Unsupported { code: "NotImplemented".into() }),
        Some(
            c @ ("InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired"
            | "InvalidSecurity"
            | "MissingSecurityHeader"
            // s3s-fs answers an unknown access key with NotSignedUp.
            | "NotSignedUp"),
        ) => return refused(Refusal::BadCredentials { code: c.into() }),
        Some("RequestTimeTooSkewed") => return refused(Refusal::ClockSkew),
        Some(c @ ("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException")) => {
            return refused(Refusal::WrongRegion { code: c.into() })
        }
        Some("NoSuchBucket") => return refused(Refusal::NoSuchBucket),
        Some(c @ ("AccessDenied" | "AllAccessDisabled" | "AccountProblem")) => {
            return refused(Refusal::AccessDenied { code: Some(c.into()) })
        }
        Some("NoSuchKey") if matches!(op, Op::Head | Op::Get) => return Classified::NotFound,
        _ => {}
    }
    match status {
        412 if op == Op::Put => Classified::AlreadyExists,
        409 if code.is_none() => Classified::Fault(Fault::Conflict),
        429 => Classified::Fault(Fault::Throttled),
        501 => refused(Refusal::Unsupported { code: code.unwrap_or("501").into() }),
        500..=599 => Classified::Fault(Fault::ServerError { status }),
        404 => match op {
            // HEAD answers have no body: a 404 is taken as a missing key (the
            // bucket was listed at recovery).
            Op::Head | Op::Get if code.is_none() || code == Some("NotFound") => Classified::NotFound,
            // A PUT or LIST names no key that could be missing: the bucket is.
            Op::Put | Op::List if code.is_none() || code == Some("NotFound") => refused(Refusal::NoSuchBucket),
            _ => other(),
        },
        403 => refused(Refusal::AccessDenied { code: code.map(String::from) }),
        301 | 307 => refused(Refusal::WrongRegion { code: code.unwrap_or("redirect").into() }),
        _ => other(),
    }
}

/// The `x-amz-checksum-crc32c` value of a PUT body, which S3 checks before
/// it stores the object (a body damaged on the way is refused, not kept).
///
/// With it, the SDK computes no checksum of its own (CRC-32 by default), and
/// the payload goes unsigned: the signature would otherwise hash the whole
/// body with SHA-256, about 0.8 ms of CPU per MiB here (BENCHMARKS.md, "PUT
/// bodies"). The checksum header itself is signed.
///
/// An s3wal object (one with an s3wal tag) costs nothing: every intact one
/// has the same whole checksum ([`format::SEALED_OBJECT_CRC32C`]), so S3
/// checks the bytes against the checksum they were sealed with, which also
/// catches damage in memory since then. Any other body is read once.
fn body_checksum(body: &[u8], metadata: &[(String, String)]) -> String {
    let crc = match metadata_value(metadata, TAG_METADATA_KEY) {
        Some(_) => format::SEALED_OBJECT_CRC32C,
        None => format::checksum(body),
    };
    aws_smithy_types::base64::encode(crc.to_be_bytes())
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: &[(String, String)]) -> PutOutcome {
        let full = self.full_key(key);
        let span = debug_span!("s3_put", bucket = %self.bucket, key = %full, bytes = body.len());
        async {
            let mut request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .if_none_match("*")
                .content_length(i64::try_from(body.len()).unwrap_or(i64::MAX))
                .checksum_crc32_c(body_checksum(&body, metadata));
            for (name, value) in metadata {
                request = request.metadata(name, value);
            }
            let request = request.body(ByteStream::from(body)).customize().disable_payload_signing();
            let outcome = match request.send().await {
                Ok(_) => PutOutcome::Created,
                Err(error) => match self.failure(Op::Put, &full, &error) {
                    Classified::AlreadyExists => PutOutcome::AlreadyExists,
                    other => PutOutcome::Failed(self.fault(Op::Put, &full, other)),
                },
            };
            debug!(?outcome, "s3 put");
            outcome
        }
        .instrument(span)
        .await
    }

    async fn head(&self, key: &str) -> HeadOutcome {
        let full = self.full_key(key);
        let span = debug_span!("s3_head", bucket = %self.bucket, key = %full);
        async {
            let outcome = match self.client.head_object().bucket(&self.bucket).key(&full).send().await {
                Ok(output) => {
                    let tag = output.metadata().and_then(|m| {
                        let pairs: Vec<(String, String)> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                        metadata_value(&pairs, TAG_METADATA_KEY).map(String::from)
                    });
                    HeadOutcome::Found { tag }
                }
                Err(error) => match self.failure(Op::Head, &full, &error) {
                    Classified::NotFound => HeadOutcome::NotFound,
                    other => HeadOutcome::Failed(self.fault(Op::Head, &full, other)),
                },
            };
            debug!(?outcome, "s3 head");
            outcome
        }
        .instrument(span)
        .await
    }

    async fn get(&self, key: &str) -> GetOutcome {
        let full = self.full_key(key);
        let span = debug_span!("s3_get", bucket = %self.bucket, key = %full);
        async {
            let outcome = match self.client.get_object().bucket(&self.bucket).key(&full).send().await {
                Ok(output) => match output.body.collect().await {
                    Ok(data) => GetOutcome::Found(data.into_bytes()),
                    Err(error) => {
                        debug!(error = %error_detail(&error), "s3 get: reading the body failed");
                        GetOutcome::Failed(Fault::ConnectionFailed)
                    }
                },
                Err(error) => match self.failure(Op::Get, &full, &error) {
                    Classified::NotFound => GetOutcome::NotFound,
                    other => GetOutcome::Failed(self.fault(Op::Get, &full, other)),
                },
            };
            match &outcome {
                GetOutcome::Found(bytes) => debug!(bytes = bytes.len(), "s3 get"),
                other => debug!(outcome = ?other, "s3 get"),
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn list(&self, prefix: &str, max_keys: u32, start_after: Option<&str>) -> Result<ListPage, Fault> {
        let full_prefix = self.full_key(prefix);
        let span = debug_span!("s3_list", bucket = %self.bucket, prefix = %full_prefix, max_keys, start_after);
        async {
            let request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .max_keys(i32::try_from(max_keys).unwrap_or(i32::MAX))
                .set_start_after(start_after.map(|after| self.full_key(after)));
            let output = match request.send().await {
                Ok(output) => output,
                Err(error) => {
                    let classified = self.failure(Op::List, &full_prefix, &error);
                    return Err(self.fault(Op::List, &full_prefix, classified));
                }
            };
            let entries: Vec<ListEntry> = output
                .contents()
                .iter()
                .filter_map(|object| {
                    let key = object.key()?.strip_prefix(self.prefix.as_str())?;
                    let size = object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                    Some(ListEntry { key: key.to_string(), size })
                })
                .collect();
            let truncated = output.is_truncated().unwrap_or(false);
            debug!(keys = entries.len(), truncated, "s3 list");
            Ok(ListPage { entries, truncated })
        }
        .instrument(span)
        .await
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_OPS: [Op; 4] = [Op::Put, Op::Head, Op::Get, Op::List];

    fn service(op: Op, status: u16, code: Option<&str>) -> Classified {
        classify(op, Some(status), code, ErrorKind::Service)
    }

    fn reason(refusal: Refusal) -> String {
        refusal.to_string()
    }

    #[test]
    fn precondition_failed_is_already_exists_on_put() {
        assert_eq!(service(Op::Put, 412, Some("PreconditionFailed")), Classified::AlreadyExists);
        assert_eq!(service(Op::Put, 412, None), Classified::AlreadyExists);
        // No other request makes a condition: a 412 there is a refusal.
        assert!(matches!(service(Op::Head, 412, None), Classified::Refused(_)));
        assert!(matches!(service(Op::List, 412, Some("PreconditionFailed")), Classified::Refused(_)));
    }

    #[test]
    fn conditional_conflict_is_a_retryable_conflict() {
        for op in ALL_OPS {
            assert_eq!(service(op, 409, Some("ConditionalRequestConflict")), Classified::Fault(Fault::Conflict));
            assert_eq!(service(op, 409, Some("OperationAborted")), Classified::Fault(Fault::Conflict));
        }
        assert_eq!(service(Op::Head, 409, None), Classified::Fault(Fault::Conflict));
        // Another 409 is not a conditional conflict.
        assert!(matches!(service(Op::Put, 409, Some("BucketNotEmpty")), Classified::Refused(_)));
    }

    #[test]
    fn slow_down_is_throttled_and_other_5xx_are_server_errors() {
        for op in ALL_OPS {
            assert_eq!(service(op, 503, Some("SlowDown")), Classified::Fault(Fault::Throttled));
            assert_eq!(service(op, 429, None), Classified::Fault(Fault::Throttled));
            assert_eq!(service(op, 500, Some("InternalError")), Classified::Fault(Fault::ServerError { status: 500 }));
            assert_eq!(service(op, 503, None), Classified::Fault(Fault::ServerError { status: 503 }));
            assert_eq!(
                service(op, 503, Some("ServiceUnavailable")),
                Classified::Fault(Fault::ServerError { status: 503 })
            );
            assert_eq!(service(op, 502, None), Classified::Fault(Fault::ServerError { status: 502 }));
            assert_eq!(service(op, 504, Some("GatewayTimeout")), Classified::Fault(Fault::ServerError { status: 504 }));
        }
        let server = Fault::ServerError { status: 500 };
        assert!(server.may_have_applied() && server.is_retryable());
        assert!(Fault::Throttled.is_retryable() && !Fault::Throttled.may_have_applied());
    }

    #[test]
    fn a_damaged_body_is_retried_and_was_never_written() {
        for op in ALL_OPS {
            assert_eq!(service(op, 400, Some("BadDigest")), Classified::Fault(Fault::BodyDamaged));
        }
        assert!(Fault::BodyDamaged.is_retryable() && !Fault::BodyDamaged.may_have_applied());
    }

    #[test]
    fn the_body_checksum_is_crc32c_big_endian_in_base64() {
        // CRC-32C's check value: crc32c(b"123456789") = 0xE3069283.
        assert_eq!(body_checksum(b"123456789", &[]), "4waSgw==");
        assert_eq!(body_checksum(b"", &[]), "AAAAAA==");
    }

    #[test]
    fn an_objects_checksum_is_the_sealed_residue_and_a_damaged_one_is_refused() {
        use crate::format::{Checkpoint, Header, ObjectKind};
        use crate::types::{CommitSeq, Epoch, LeaderId, Position};
        let header = Header {
            kind: ObjectKind::Batch,
            leader: LeaderId(7),
            epoch: Epoch { generation: 3, nonce: 0xabc },
            position: Position(41),
            first_seq: CommitSeq(1000),
            count: 0,
            checkpoint: Checkpoint::default(),
            window: 50,
        };
        let commits = [Bytes::from_static(b"one"), Bytes::from_static(b"two")];
        let (object, tag) = crate::format::encode_batch(header, &commits);
        let metadata = [(TAG_METADATA_KEY.to_string(), tag.to_metadata_value())];
        assert_eq!(body_checksum(&object, &metadata), body_checksum(&object, &[]), "what S3 computes");
        for at in [10, object.len() - 1] {
            let mut damaged = object.to_vec();
            damaged[at] ^= 1;
            assert_ne!(body_checksum(&damaged, &metadata), body_checksum(&damaged, &[]), "S3 refuses byte {at}");
        }
    }

    #[test]
    fn not_implemented_is_refused_not_retried() {
        let c = service(Op::Put, 501, Some("NotImplemented"));
        let Classified::Refused(r) = c else { panic!("{c:?}") };
        assert!(reason(r).contains("If-None-Match"));
    }

    #[test]
    fn timeouts_and_connection_failures_are_ambiguous() {
        for op in ALL_OPS {
            assert_eq!(classify(op, None, None, ErrorKind::Timeout), Classified::Fault(Fault::TimedOut));
            assert_eq!(classify(op, None, None, ErrorKind::DispatchTimeout), Classified::Fault(Fault::TimedOut));
            assert_eq!(classify(op, None, None, ErrorKind::Dispatch), Classified::Fault(Fault::ConnectionFailed));
            // A 200 whose body could not be read: nobody knows what happened.
            assert_eq!(classify(op, Some(200), None, ErrorKind::Response), Classified::Fault(Fault::ConnectionFailed));
            assert_eq!(service(op, 400, Some("RequestTimeout")), Classified::Fault(Fault::TimedOut));
        }
        for fault in [Fault::TimedOut, Fault::ConnectionFailed] {
            assert!(fault.may_have_applied() && fault.is_retryable());
        }
    }

    #[test]
    fn a_response_error_with_an_error_status_is_judged_by_its_status() {
        assert_eq!(
            classify(Op::Put, Some(500), None, ErrorKind::Response),
            Classified::Fault(Fault::ServerError { status: 500 })
        );
        assert_eq!(classify(Op::Put, Some(412), None, ErrorKind::Response), Classified::AlreadyExists);
    }

    #[test]
    fn requests_never_sent_are_refused() {
        for op in ALL_OPS {
            assert_eq!(classify(op, None, None, ErrorKind::Construction), Classified::Refused(Refusal::CannotSend));
            assert_eq!(classify(op, None, None, ErrorKind::DispatchUser), Classified::Refused(Refusal::CannotSend));
        }
    }

    /// moto in server mode does not check signatures, so wrong credentials
    /// are tested here, on the mapping alone.
    #[test]
    fn wrong_credentials_are_refused_and_named() {
        for code in ["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "NotSignedUp"] {
            for op in ALL_OPS {
                let c = service(op, 403, Some(code));
                assert_eq!(c, Classified::Refused(Refusal::BadCredentials { code: code.into() }), "{op:?} {code}");
            }
            let text = reason(Refusal::BadCredentials { code: code.into() });
            assert!(text.contains(code) && text.contains("credentials"), "{text}");
        }
        // ExpiredToken comes as a 400.
        assert_eq!(
            service(Op::Put, 400, Some("ExpiredToken")),
            Classified::Refused(Refusal::BadCredentials { code: "ExpiredToken".into() })
        );
    }

    #[test]
    fn missing_credentials_are_refused_and_a_failing_provider_is_retried() {
        for op in ALL_OPS {
            assert_eq!(classify(op, None, None, ErrorKind::NoCredentials), Classified::Refused(Refusal::NoCredentials));
            assert_eq!(classify(op, None, None, ErrorKind::CredentialsTimedOut), Classified::Fault(Fault::TimedOut));
            assert_eq!(
                classify(op, None, None, ErrorKind::CredentialsFailed),
                Classified::Fault(Fault::ConnectionFailed)
            );
        }
        assert!(reason(Refusal::NoCredentials).contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn credential_errors_are_found_among_the_causes() {
        #[derive(Debug)]
        struct Wrapper(CredentialsError);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let none = Wrapper(CredentialsError::not_loaded("no providers in chain"));
        assert_eq!(credentials_problem(&none), Some(ErrorKind::NoCredentials));
        let slow = Wrapper(CredentialsError::provider_timed_out(Duration::from_secs(5)));
        assert_eq!(credentials_problem(&slow), Some(ErrorKind::CredentialsTimedOut));
        let failed = Wrapper(CredentialsError::provider_error("STS unreachable"));
        assert_eq!(credentials_problem(&failed), Some(ErrorKind::CredentialsFailed));
        let other = std::io::Error::other("reset");
        assert_eq!(credentials_problem(&other), None);
    }

    #[test]
    fn access_denied_is_refused() {
        for op in ALL_OPS {
            assert_eq!(
                service(op, 403, Some("AccessDenied")),
                Classified::Refused(Refusal::AccessDenied { code: Some("AccessDenied".into()) })
            );
            // HEAD answers carry no code.
            assert_eq!(service(op, 403, None), Classified::Refused(Refusal::AccessDenied { code: None }));
        }
        assert!(reason(Refusal::AccessDenied { code: None }).contains("access denied"));
    }

    #[test]
    fn missing_keys_and_missing_buckets() {
        for op in [Op::Head, Op::Get] {
            assert_eq!(service(op, 404, Some("NoSuchKey")), Classified::NotFound);
            assert_eq!(service(op, 404, Some("NotFound")), Classified::NotFound);
            assert_eq!(service(op, 404, None), Classified::NotFound);
        }
        for op in ALL_OPS {
            assert_eq!(service(op, 404, Some("NoSuchBucket")), Classified::Refused(Refusal::NoSuchBucket));
        }
        assert_eq!(service(Op::List, 404, None), Classified::Refused(Refusal::NoSuchBucket));
        assert_eq!(service(Op::Put, 404, None), Classified::Refused(Refusal::NoSuchBucket));
        assert_eq!(reason(Refusal::NoSuchBucket), "no such bucket");
    }

    #[test]
    fn other_client_errors_are_refused_with_status_and_code() {
        let c = service(Op::Put, 400, Some("InvalidArgument"));
        assert_eq!(c, Classified::Refused(Refusal::Other { status: Some(400), code: Some("InvalidArgument".into()) }));
        let Classified::Refused(r) = c else { unreachable!() };
        assert_eq!(reason(r), "refused with HTTP 400 (InvalidArgument)");
        assert!(matches!(
            service(Op::List, 400, Some("AuthorizationHeaderMalformed")),
            Classified::Refused(Refusal::WrongRegion { .. })
        ));
        assert!(matches!(service(Op::List, 301, None), Classified::Refused(Refusal::WrongRegion { .. })));
        assert_eq!(service(Op::Put, 403, Some("RequestTimeTooSkewed")), Classified::Refused(Refusal::ClockSkew));
        // Every refusal turns into a fault that is not retried.
        assert!(!Fault::Rejected { reason: "x".into() }.is_retryable());
    }

    #[test]
    fn error_details_follow_the_chain_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("dispatch failure")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(error_detail(&Outer(refused)), "dispatch failure: Connection refused");
    }

    #[test]
    fn endpoints_in_messages_carry_no_userinfo() {
        assert_eq!(without_userinfo("http://127.0.0.1:9000"), "http://127.0.0.1:9000");
        assert_eq!(without_userinfo("https://key:secret@s3.example.com/x"), "https://s3.example.com/x");
        assert_eq!(without_userinfo("https://s3.example.com/a@b"), "https://s3.example.com/a@b");
    }

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalize_prefix(""), "");
        assert_eq!(normalize_prefix("/"), "");
        assert_eq!(normalize_prefix("a/b"), "a/b/");
        assert_eq!(normalize_prefix("a/b/"), "a/b/");
        assert_eq!(normalize_prefix("/a/b//"), "a/b/");
    }

    #[test]
    fn options_are_validated() {
        let ok = S3Options::new("bucket");
        assert!(validate(&ok).is_ok());
        let err = validate(&S3Options::new("")).unwrap_err();
        assert!(matches!(err, S3Error::InvalidOption { field: "bucket", .. }), "{err}");
        let err = validate(&S3Options { pool_size: 0, ..ok.clone() }).unwrap_err();
        assert!(matches!(err, S3Error::InvalidOption { field: "pool_size", .. }), "{err}");
        let err = validate(&S3Options { endpoint: Some("127.0.0.1:9000".into()), ..ok.clone() }).unwrap_err();
        assert!(matches!(err, S3Error::InvalidOption { field: "endpoint", .. }), "{err}");
    }

    #[test]
    fn directory_buckets_are_refused_with_the_reason() {
        let err = validate(&S3Options::new("my-log--usw2-az1--x-s3")).unwrap_err();
        assert!(matches!(err, S3Error::DirectoryBucket { .. }));
        let text = err.to_string();
        assert!(text.contains("directory bucket") && text.contains("LIST") && text.contains("order"), "{text}");
    }
}
