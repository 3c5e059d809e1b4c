//! Writing line protocol to InfluxDB: the v1 API (`/write`, database and retention policy; the
//! database is created when missing) or the v2 API (`/api/v2/write`, org, bucket and token).

use std::time::Duration;

use reqwest::{StatusCode, Url};
use thiserror::Error;

use crate::settings::{InfluxApi, InfluxSettings};
#[cfg(test)]
use statmsg_plumbing::config::Secret;

/// How a write failed, which decides what the consumer does next.
#[derive(Debug, Error)]
pub enum WriteError {
    /// Network trouble, overload or a server error: try again later, commit nothing.
    #[error("InfluxDB unavailable: {0}")]
    Unavailable(String),
    /// The v1 database does not exist.
    #[error("InfluxDB database does not exist: {0}")]
    DatabaseMissing(String),
    /// The v1 retention policy does not exist.
    #[error("InfluxDB retention policy does not exist: {0}")]
    PolicyMissing(String),
    /// Credentials refused: nothing will work until the configuration changes.
    #[error("InfluxDB refused the credentials ({status}): {body}")]
    Unauthorized { status: u16, body: String },
    /// The server refused the points themselves (bad line, type conflict, too large).
    #[error("InfluxDB refused the points ({status}): {body}")]
    Rejected { status: u16, body: String },
}

/// Classifies a write response (pure, tested below).
pub fn classify(status: StatusCode, body: &str) -> Result<(), WriteError> {
    let body = body.trim().to_owned();
    match status.as_u16() {
        200..=299 => Ok(()),
        404 if body.contains("database not found") => Err(WriteError::DatabaseMissing(body)),
        _ if body.contains("retention policy not found") => Err(WriteError::PolicyMissing(body)),
        401 | 403 => Err(WriteError::Unauthorized { status: status.as_u16(), body }),
        400 | 413 | 422 => Err(WriteError::Rejected { status: status.as_u16(), body }),
        s => Err(WriteError::Unavailable(format!("HTTP {s}: {body}"))),
    }
}

/// The database, a retention policy or a continuous query could not be created.
#[derive(Debug, Error)]
pub enum CreateError {
    #[error(
        "InfluxDB user lacks the right to set up database {database:?} ({detail}): run `statmsg \
         influx setup` as an admin (or CREATE DATABASE \"{database}\"), or grant the user admin rights"
    )]
    NotAllowed { database: String, detail: String },
    #[error("cannot set up InfluxDB database {database:?}: {detail}")]
    Failed { database: String, detail: String },
}

impl CreateError {
    /// InfluxDB said the object exists already (with other settings).
    pub fn already_exists(&self) -> bool {
        matches!(self, CreateError::Failed { detail, .. } if detail.contains("already exists"))
    }
}

#[derive(Debug, Clone)]
pub struct InfluxClient {
    client: reqwest::Client,
    settings: InfluxSettings,
    write_url: Url,
    /// Where the per-minute points go (the same as `write_url` without a recent policy).
    recent_url: Url,
}

impl InfluxClient {
    pub fn new(settings: &InfluxSettings) -> Result<InfluxClient, super::ConsumeError> {
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("statmsg/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            // A private CA, trusted besides the system's (validated with the configuration).
            let pem = std::fs::read(path)
                .map_err(|source| super::ConsumeError::CaFile { path: path.clone(), source })?;
            for certificate in reqwest::Certificate::from_pem_bundle(&pem)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build()?;
        let recent_policy = settings.recent.as_ref().map(|r| r.policy.as_str());
        Ok(InfluxClient {
            client,
            write_url: write_url(settings, None),
            recent_url: write_url(settings, recent_policy),
            settings: settings.clone(),
        })
    }

    pub fn settings(&self) -> &InfluxSettings {
        &self.settings
    }

    /// Posts a line-protocol body (nanosecond timestamps), gzip-compressed (InfluxDB 1.x, 2.x,
    /// 3.x and VictoriaMetrics all take `Content-Encoding: gzip`; points of a fleet shrink about
    /// tenfold).
    pub async fn write(&self, body: &str) -> Result<(), WriteError> {
        self.write_to(&self.write_url, body).await
    }

    /// [`InfluxClient::write`] into the retention policy of the per-minute points.
    pub async fn write_recent(&self, body: &str) -> Result<(), WriteError> {
        self.write_to(&self.recent_url, body).await
    }

    async fn write_to(&self, url: &Url, body: &str) -> Result<(), WriteError> {
        let request = self
            .authorize(self.client.post(url.clone()))
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(gzip(body.as_bytes()));
        let response = request.send().await.map_err(|e| WriteError::Unavailable(error_chain(&e)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        classify(status, &text)
    }

    /// v1: creates the database if it is missing (`CREATE DATABASE` is idempotent). v2: nothing
    /// (buckets are managed by the server's owner).
    pub async fn ensure_database(&self) -> Result<(), CreateError> {
        let InfluxApi::V1 { database, .. } = &self.settings.api else {
            return Ok(());
        };
        self.execute(&format!("CREATE DATABASE {}", quote_identifier(database))).await.map(drop)
    }

    /// v1: runs one InfluxQL statement (`POST /query`) and returns the response body; an error in
    /// its result is an error.
    pub async fn execute(&self, statement: &str) -> Result<String, CreateError> {
        let database = match &self.settings.api {
            InfluxApi::V1 { database, .. } => database.clone(),
            InfluxApi::V2 { bucket, .. } => bucket.clone(),
        };
        let failed = |detail: String| CreateError::Failed { database: database.clone(), detail };
        let mut url = self.settings.url.clone();
        url.set_path(&join_path(url.path(), "query"));
        let response = self
            .authorize(self.client.post(url))
            .form(&[("q", statement), ("db", database.as_str())])
            .send()
            .await
            .map_err(|e| failed(error_chain(&e)))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let not_allowed = status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
            || text.contains("requires admin privilege")
            || text.contains("not authorized");
        if not_allowed {
            return Err(CreateError::NotAllowed { database, detail: text.trim().to_owned() });
        }
        if !status.is_success() || text.contains("\"error\"") {
            return Err(failed(format!("HTTP {status}: {}", text.trim())));
        }
        Ok(text)
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.settings.api {
            InfluxApi::V1 { username, password, .. } if !username.is_empty() => {
                request.basic_auth(username, Some(password.expose()))
            }
            InfluxApi::V2 { token, .. } if !token.is_empty() => {
                request.header(reqwest::header::AUTHORIZATION, format!("Token {}", token.expose()))
            }
            _ => request,
        }
    }
}

/// `bytes` gzip-compressed at the fastest level (a few milliseconds for a 5,000-point body).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// The write endpoint with its query parameters (pure, tested below); `policy` overrides the
/// configured retention policy (v1).
pub fn write_url(settings: &InfluxSettings, policy: Option<&str>) -> Url {
    let mut url = settings.url.clone();
    match &settings.api {
        InfluxApi::V1 { database, retention_policy, .. } => {
            url.set_path(&join_path(url.path(), "write"));
            let mut q = url.query_pairs_mut();
            q.append_pair("db", database).append_pair("precision", "ns");
            let retention_policy = policy.unwrap_or(retention_policy);
            if !retention_policy.is_empty() {
                q.append_pair("rp", retention_policy);
            }
        }
        InfluxApi::V2 { org, bucket, .. } => {
            url.set_path(&join_path(url.path(), "api/v2/write"));
            let mut q = url.query_pairs_mut();
            q.append_pair("bucket", bucket).append_pair("precision", "ns");
            if !org.is_empty() {
                q.append_pair("org", org);
            }
        }
    }
    url
}

/// Appends to a base path, so that InfluxDB behind a reverse-proxy prefix works.
fn join_path(base: &str, tail: &str) -> String {
    format!("{}/{tail}", base.trim_end_matches('/'))
}

/// An InfluxQL double-quoted identifier.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, api: InfluxApi) -> InfluxSettings {
        InfluxSettings {
            url: Url::parse(url).unwrap(),
            api,
            timeout: Duration::from_secs(1),
            ca_file: None,
            recent: None,
            setup: true,
        }
    }

    #[test]
    fn write_urls() {
        let v1 = InfluxApi::V1 {
            database: "stat msg".into(),
            retention_policy: "year".into(),
            username: String::new(),
            password: Secret::default(),
        };
        assert_eq!(
            write_url(&settings("http://127.0.0.1:8086", v1.clone()), None).as_str(),
            "http://127.0.0.1:8086/write?db=stat+msg&precision=ns&rp=year"
        );
        assert_eq!(
            write_url(&settings("https://proxy/influx/", v1.clone()), None).as_str(),
            "https://proxy/influx/write?db=stat+msg&precision=ns&rp=year"
        );
        assert_eq!(
            write_url(&settings("http://127.0.0.1:8086", v1), Some("statmsg_recent")).as_str(),
            "http://127.0.0.1:8086/write?db=stat+msg&precision=ns&rp=statmsg_recent"
        );
        let v2 =
            InfluxApi::V2 { org: "contoso".into(), bucket: "statmsg".into(), token: Secret::new("t".into()) };
        assert_eq!(
            write_url(&settings("http://127.0.0.1:8428", v2), None).as_str(),
            "http://127.0.0.1:8428/api/v2/write?bucket=statmsg&precision=ns&org=contoso"
        );
    }

    #[test]
    fn responses_decide_retry_create_or_dead_letter() {
        assert!(classify(StatusCode::NO_CONTENT, "").is_ok());
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, r#"{"error":"database not found: \"x\""}"#),
            Err(WriteError::DatabaseMissing(_))
        ));
        assert!(matches!(
            classify(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"retention policy not found: statmsg_recent"}"#
            ),
            Err(WriteError::PolicyMissing(_))
        ));
        assert!(matches!(classify(StatusCode::NOT_FOUND, "no such page"), Err(WriteError::Unavailable(_))));
        assert!(matches!(classify(StatusCode::BAD_REQUEST, "{}"), Err(WriteError::Rejected { .. })));
        assert!(matches!(classify(StatusCode::FORBIDDEN, "{}"), Err(WriteError::Unauthorized { .. })));
        assert!(matches!(classify(StatusCode::SERVICE_UNAVAILABLE, ""), Err(WriteError::Unavailable(_))));
        assert!(matches!(classify(StatusCode::TOO_MANY_REQUESTS, ""), Err(WriteError::Unavailable(_))));
    }

    #[test]
    fn bodies_are_gzip_that_decompresses_to_them() {
        use std::io::Read as _;
        let body = "statmsg,site=CS1 id=6702i 1\n".repeat(1000);
        let compressed = gzip(body.as_bytes());
        assert!(compressed.len() * 10 < body.len(), "{} bytes", compressed.len());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&compressed[..]).read_to_string(&mut back).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
