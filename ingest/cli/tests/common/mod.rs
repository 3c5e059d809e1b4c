//! Shared helpers of the end-to-end tests: the real servers of `deploy/local/stack`, unique
//! names per test, the `statmsg` binary as child processes, log lines in the server format.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn kafka_brokers() -> String {
    std::env::var("STATMSG_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn influx_url() -> String {
    std::env::var("STATMSG_TEST_INFLUXDB").unwrap_or_else(|_| "http://127.0.0.1:8086".into())
}

pub fn victoria_url() -> String {
    std::env::var("STATMSG_TEST_VICTORIA").unwrap_or_else(|_| "http://127.0.0.1:8428".into())
}

/// A name no other test run uses (topics, groups, databases, hierarchies).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// One test's world: a temp dir with a log folder, a state folder and a config file.
pub struct World {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl World {
    pub fn new(prefix: &str) -> World {
        World { dir: tempfile::tempdir().unwrap(), name: unique(prefix) }
    }

    pub fn log_path(&self, file: &str) -> PathBuf {
        let logs = self.dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        logs.join(file)
    }

    /// Writes a config; `influx` is the `[influxdb]` section's body.
    pub fn config(&self, influx: &str) -> PathBuf {
        let path = self.dir.path().join("statmsg.toml");
        let text = format!(
            r#"hierarchy = "{name}"
[collect]
paths = ["{logs}/*.log"]
state_dir = "{state}"
start_at = "beginning"
site = "CS1"
poll_interval_ms = 50
[kafka]
brokers = "{brokers}"
topic = "{name}.records"
dead_letter_topic = "{name}.dead-letter"
state_topic = "{name}.tracker-state"
group_id = "{name}"
partitions = 3
[kafka.properties]
"message.timeout.ms" = "60000"
[consume]
batch_max_messages = 500
batch_max_points = 500
batch_linger_ms = 100
heartbeat_s = 1
[influxdb]
{influx}
"#,
            name = self.name,
            logs = self.dir.path().join("logs").display(),
            state = self.dir.path().join("state").display(),
            brokers = kafka_brokers(),
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A running `statmsg` subcommand, killed when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
    log: PathBuf,
}

impl Proc {
    pub fn start(command: &str, config: &Path) -> Proc {
        let log = config.with_file_name(format!("{command}-{}.log", unique("run")));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_statmsg"))
            .args([command, "--config"])
            .arg(config)
            .env("RUST_LOG", "info,statmsg=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Proc { child, what: command.into(), log }
    }

    /// SIGTERM, then waits; the process must exit cleanly.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{} exited with {status}:\n{}", self.what, self.output());
                return;
            }
            assert!(Instant::now() < deadline, "{} did not stop on SIGTERM:\n{}", self.what, self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush or checkpoint.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server-format line: local time `local` with Windows bias `bias` (UTC = local + bias).
pub fn server_line(message: &str, local: chrono::NaiveDateTime, bias: i32, thread: u32) -> String {
    let mut line = String::new();
    statmsg_parse::synth::write_server_line(&mut line, message, "SMS_WSUS_SYNC_MANAGER", local, bias, thread);
    line
}

/// A STATMSG message with the given insertion strings and optional LE.
pub fn statmsg_message(
    id: u16,
    sev: char,
    gmt: chrono::NaiveDateTime,
    istr: &[String],
    le: Option<u32>,
) -> String {
    let mut s = format!(
        "STATMSG: ID={id} SEV={sev} LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=CM1.contoso.com SITE=CS1 PID=2836 TID=9640 GMTDATE={}",
        gmt.format("%a %b %d %H:%M:%S%.3f %Y")
    );
    for k in 0..10 {
        s.push_str(&format!(" ISTR{k}=\"{}\"", istr.get(k).map_or("", String::as_str)));
    }
    s.push_str(" NUMATTRS=0");
    if let Some(le) = le {
        s.push_str(&format!(" LE=0X{le:08x}"));
    }
    s
}

pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
}

/// `statmsg influx setup --config CONFIG`, which must succeed; returns what it said.
pub fn influx_setup(config: &Path) -> String {
    let setup = Command::new(env!("CARGO_BIN_EXE_statmsg"))
        .args(["influx", "setup", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&setup.stdout).into_owned() + &String::from_utf8_lossy(&setup.stderr);
    assert!(setup.status.success(), "statmsg influx setup --config {}: {said}", config.display());
    said
}

/// Runs an InfluxQL query against the v1 server and returns the first result.
pub fn influx_query(database: &str, q: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "-G", &format!("{}/query", influx_url())])
        .args(["--data-urlencode", &format!("db={database}")])
        .args(["--data-urlencode", "epoch=ns"])
        .args(["--data-urlencode", &format!("q={q}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "query {q}: {}", String::from_utf8_lossy(&out.stdout));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["results"][0].clone()
}

/// Rows of a one-series result as maps column -> value.
pub fn rows(result: &Value) -> Vec<serde_json::Map<String, Value>> {
    let Some(series) = result["series"].as_array() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in series {
        let columns: Vec<String> =
            s["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        for v in s["values"].as_array().unwrap() {
            let mut row = serde_json::Map::new();
            for (c, x) in columns.iter().zip(v.as_array().unwrap()) {
                row.insert(c.clone(), x.clone());
            }
            if let Some(tags) = s["tags"].as_object() {
                row.extend(tags.clone());
            }
            out.push(row);
        }
    }
    out
}

/// Polls `probe` until it returns `Some`, or fails after `limit` with `context()`.
pub fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?}: {}", context());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Number of points of measurement `statmsg` in `database` (0 when it does not exist yet).
pub fn statmsg_count(database: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sS", "-G", &format!("{}/query", influx_url())])
        .args(["--data-urlencode", &format!("db={database}")])
        .args(["--data-urlencode", "q=SELECT count(pid) FROM statmsg"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["results"][0]["series"][0]["values"][0][1].as_u64().unwrap_or(0)
}

/// An InfluxDB of this test's own, so that stopping it disturbs no other test.
pub struct PrivateInflux {
    child: Option<Child>,
    dir: std::path::PathBuf,
    port: u16,
    https: bool,
}

impl PrivateInflux {
    pub fn start(dir: &Path, port: u16, auth: bool) -> PrivateInflux {
        Self::start_with(dir, port, auth, None)
    }

    /// Over HTTPS with `certificate` (a server certificate and its key, PEM).
    pub fn start_with(
        dir: &Path,
        port: u16,
        auth: bool,
        certificate: Option<&ServerCertificate>,
    ) -> PrivateInflux {
        let template = include_str!("../../../../deploy/local/influxdb.conf");
        let mut conf = template
            .replace("@DIR@", &dir.display().to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@RPC_PORT@", &(port + 1).to_string())
            .replace(
                "auth-enabled = false",
                if auth { "auth-enabled = true" } else { "auth-enabled = false" },
            );
        if let Some(c) = certificate {
            conf = conf.replace(
                "  log-enabled = false",
                &format!(
                    "  log-enabled = false\n  https-enabled = true\n  https-certificate = \"{}\"\n  https-private-key = \"{}\"",
                    c.cert.display(),
                    c.key.display()
                ),
            );
        }
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("influxdb.conf"), conf).unwrap();
        let mut me =
            PrivateInflux { child: None, dir: dir.to_path_buf(), port, https: certificate.is_some() };
        me.resume();
        me
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.https { "https" } else { "http" }, self.port)
    }

    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("influxd.log")).unwrap();
        let child = Command::new("influxd")
            .arg("-config")
            .arg(self.dir.join("influxdb.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("influxd (Debian package influxdb) must be installed");
        self.child = Some(child);
        let ping = format!("{}/ping", self.url());
        wait_for(
            Duration::from_secs(30),
            // Up is all this asks (-k); the tests' own clients check the certificate.
            || Command::new("curl").args(["-skf", &ping]).status().unwrap().success().then_some(()),
            || std::fs::read_to_string(self.dir.join("influxd.log")).unwrap_or_default(),
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateInflux {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Two adjacent free loopback ports from `base` on (HTTP and RPC of a private InfluxDB).
/// The Prometheus exposition at `127.0.0.1:port/metrics`, as a scraper gets it ("" when none).
pub fn scrape_metrics(port: u16) -> String {
    let out =
        Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{port}/metrics")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port_pair(base: u16) -> u16 {
    // Tests of one binary run in parallel: each call starts elsewhere, so that two servers that
    // have not bound their ports yet never get the same pair.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
    let start = base + (std::process::id() % 100) as u16 * 2 + (call % 20) * 1000;
    (0..400u16).map(|i| start + i * 2).find(|&p| free(p) && free(p + 1)).expect("no free port pair")
}

/// A Kafka broker of this test's own (the stack's jars, its own ports and data), so that killing
/// it disturbs no other test. Needs `deploy/local/install` (the jars) and Java.
pub struct PrivateKafka {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    secure_port: Option<u16>,
}

/// A SASL_SSL listener: SCRAM-SHA-512 with one user, TLS with `certificate`.
pub struct SaslSsl<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub certificate: &'a ServerCertificate,
}

impl PrivateKafka {
    fn jars() -> PathBuf {
        if let Ok(jars) = std::env::var("STATMSG_KAFKA_JARS") {
            return jars.into();
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let stack =
            std::env::var("STATMSG_STACK_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join(".stack"));
        stack.join("kafka-jars")
    }

    fn java(&self, args: &[&str]) -> Command {
        let mut c = Command::new("java");
        c.args(["-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true"])
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .arg("-cp")
            .arg(format!("{}/*", Self::jars().display()))
            .args(args);
        c
    }

    pub fn start(dir: &Path) -> PrivateKafka {
        Self::start_with(dir, None)
    }

    /// With a SASL_SSL listener besides the PLAINTEXT one (which the tests use to look).
    pub fn start_with(dir: &Path, secure: Option<SaslSsl<'_>>) -> PrivateKafka {
        let port = free_port_pair(19_400);
        std::fs::create_dir_all(dir).unwrap();
        let mut props = include_str!("../../../../deploy/local/kafka-server.properties")
            .replace("@DATA@", &dir.join("data").display().to_string())
            .replace("@NODE@", "1")
            .replace("@VOTERS@", &format!("1@127.0.0.1:{}", port + 1))
            .replace("@REPLICAS@", "1")
            .replace("@MIN_ISR@", "1")
            .replace("@CONTROLLER_PORT@", &(port + 1).to_string())
            .replace("@PORT@", &port.to_string());
        let secure_port = secure.as_ref().map(|_| free_port_pair(23_400));
        if let (Some(secure), Some(secure_port)) = (&secure, secure_port) {
            let keystore = dir.join("keystore.pem");
            let key = std::fs::read_to_string(&secure.certificate.key).unwrap();
            let cert = std::fs::read_to_string(&secure.certificate.cert).unwrap();
            std::fs::write(&keystore, format!("{key}{cert}")).unwrap();
            props = props
                .replace(
                    &format!("listeners=PLAINTEXT://127.0.0.1:{port},"),
                    &format!("listeners=PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{secure_port},"),
                )
                .replace(
                    &format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port}"),
                    &format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{secure_port}"),
                )
                .replace(
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,",
                );
            props.push_str(&format!(
                "sasl.enabled.mechanisms=SCRAM-SHA-512\n\
                 listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
                 listener.name.sasl_ssl.ssl.keystore.type=PEM\n\
                 listener.name.sasl_ssl.ssl.keystore.location={}\n",
                keystore.display()
            ));
        }
        std::fs::write(dir.join("server.properties"), props).unwrap();
        let me = PrivateKafka { child: None, dir: dir.to_path_buf(), port, secure_port };
        let id = me.java(&["kafka.tools.StorageTool", "random-uuid"]).output().unwrap();
        assert!(id.status.success(), "Kafka jars in {}: run deploy/local/install", Self::jars().display());
        let id = String::from_utf8(id.stdout).unwrap();
        let props = dir.join("server.properties").display().to_string();
        let mut format_args =
            vec!["kafka.tools.StorageTool".to_owned(), "format".into(), "-t".into(), id.trim().into()];
        format_args.extend(["-c".to_owned(), props]);
        if let Some(secure) = &secure {
            // The SCRAM user, in the cluster's first metadata.
            format_args.push("--add-scram".into());
            format_args.push(format!("SCRAM-SHA-512=[name={},password={}]", secure.user, secure.password));
        }
        let format_args: Vec<&str> = format_args.iter().map(String::as_str).collect();
        let format = me.java(&format_args).output().unwrap();
        assert!(format.status.success(), "{}", String::from_utf8_lossy(&format.stderr));
        let mut me = me;
        me.resume();
        me
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The SASL_SSL listener.
    pub fn secure_brokers(&self) -> String {
        format!("127.0.0.1:{}", self.secure_port.expect("started with a SASL_SSL listener"))
    }

    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("kafka.log")).unwrap();
        let props = self.dir.join("server.properties").display().to_string();
        let child =
            self.java(&["kafka.Kafka", &props]).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        self.child = Some(child);
        let brokers = self.brokers();
        wait_for(
            Duration::from_secs(90),
            || {
                let out = Command::new("kcat").args(["-b", &brokers, "-L", "-m", "3"]).output().unwrap();
                out.status.success().then_some(())
            },
            || std::fs::read_to_string(self.dir.join("kafka.log")).unwrap_or_default(),
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the broker as an outage would, but cleanly (SIGTERM, up to 60 s): these tests count
    /// what the collector loses, so the broker's own recovery after a crash is kept out of them.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Every record of `topic` from its beginning to its current end, each as the schema-1 envelope
/// it would have been alone (a collector sends bundles of records: schema 2), but the
/// collectors' heartbeats (see [`heartbeat_payloads`]). Read as plain JSON, not through
/// statmsg's own types.
pub fn topic_payloads(brokers: &str, topic: &str) -> Vec<String> {
    let mut records = Vec::new();
    for payload in all_payloads(brokers, topic).into_iter().filter(|p| !is_heartbeat(p)) {
        let v: Value = match serde_json::from_str(&payload) {
            Ok(v) => v,
            Err(_) => {
                records.push(payload);
                continue;
            }
        };
        let Some(bundled) = v.get("records").and_then(Value::as_array) else {
            records.push(payload);
            continue;
        };
        for r in bundled {
            let mut source = serde_json::json!({"path": v["path"], "offset": r["offset"]});
            if let Some(file) = v.get("file") {
                source["file"] = file.clone();
            }
            let mut alone = serde_json::json!({
                "schema": v["schema"], "hierarchy": v["hierarchy"], "site": v["site"], "host": v["host"],
                "source": source, "record": r["record"],
            });
            if let Some(truncated) = r.get("truncated") {
                alone["truncated"] = truncated.clone();
            }
            records.push(alone.to_string());
        }
    }
    records
}

/// How many messages of records (bundles) `topic` holds, heartbeats left out.
pub fn topic_messages(brokers: &str, topic: &str) -> usize {
    all_payloads(brokers, topic).into_iter().filter(|p| !is_heartbeat(p)).count()
}

/// The collectors' heartbeats in `topic`, parsed.
pub fn heartbeat_payloads(brokers: &str, topic: &str) -> Vec<Value> {
    let beats = all_payloads(brokers, topic).into_iter().filter(|p| is_heartbeat(p));
    beats.map(|p| serde_json::from_str(&p).unwrap()).collect()
}

fn is_heartbeat(payload: &str) -> bool {
    let v: Value = serde_json::from_str(payload).unwrap_or_default();
    v.get("collector").is_some() && v.get("record").is_none() && v.get("records").is_none()
}

fn all_payloads(brokers: &str, topic: &str) -> Vec<String> {
    let out = Command::new("kcat")
        .args(["-b", brokers, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\\n"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

/// The checkpointed offset of the followed file now at `log` (0 when there is none).
pub fn checkpoint_offset(state: &Path, log: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(state.join("checkpoints.json")) else { return 0 };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["followed"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["path"].as_str() == log.to_str())
        .and_then(|f| f["offset"].as_u64())
        .unwrap_or(0)
}

/// A server certificate and its private key (PEM files).
pub struct ServerCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A throw-away certificate authority, made with `openssl` at test time.
pub struct TestCa {
    dir: PathBuf,
    /// The CA's certificate (PEM): what a client trusts.
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ]);
        TestCa { dir: dir.to_path_buf(), cert, key }
    }

    /// A certificate for 127.0.0.1 and localhost, signed by this CA.
    pub fn issue(&self, name: &str) -> ServerCertificate {
        let path = |ext: &str| self.dir.join(format!("{name}.{ext}")).display().to_string();
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &path("key"),
            "-out",
            &path("csr"),
        ]);
        std::fs::write(path("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &path("csr"),
            "-CA",
            &self.cert.display().to_string(),
            "-CAkey",
            &self.key.display().to_string(),
            "-CAcreateserial",
            "-extfile",
            &path("ext"),
            "-out",
            &path("pem"),
        ]);
        ServerCertificate { cert: path("pem").into(), key: path("key").into() }
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}
