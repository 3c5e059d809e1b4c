//! The Prometheus endpoint of a stage: `GET /metrics` in the text exposition format on an opt-in
//! address, rendered on each scrape from the stage's own counters. Anything else gets a 404; a
//! slow client is cut off after 5 s.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::shutdown::Shutdown;

/// Renders the current metrics as exposition text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `render` on `address` until shutdown.
pub async fn serve(address: SocketAddr, render: Render, shutdown: Shutdown) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(%address, "metrics at http://{address}/metrics");
    loop {
        let (mut stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("metrics: {e}");
                    continue;
                }
            },
        };
        // Each scrape in a task of its own: a client that sends nothing holds up neither the
        // next scrape nor the shutdown.
        let render = render.clone();
        tokio::spawn(async move {
            let answer = async {
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).await?;
                let head = String::from_utf8_lossy(&request[..n]);
                let response = if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?") {
                    let body = render();
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                };
                stream.write_all(response.as_bytes()).await?;
                stream.shutdown().await
            };
            if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(5), answer).await {
                tracing::debug!("metrics: {e}");
            }
        });
    }
}

/// The type of a metric.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// A latency histogram, filled from any thread.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.counts[bucket].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

/// A label value in the exposition format: backslash, double quote and line end escaped.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Builds exposition text: each metric with its help and type lines.
#[derive(Debug, Default)]
pub struct Exposition(String);

impl Exposition {
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        self
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
        self
    }

    /// One metric with a sample per label set, e.g. `("partition", "3")`.
    pub fn labeled<'a>(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: impl IntoIterator<Item = (&'a str, String, f64)>,
    ) -> &mut Self {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {}\n", kind.name());
        for (label, value, sample) in samples {
            let _ = writeln!(self.0, "{name}{{{label}=\"{}\"}} {sample}", escape_label(&value));
        }
        self
    }

    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) -> &mut Self {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&histogram.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(self.0, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = histogram.count.load(Relaxed);
        let sum = histogram.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ =
            write!(self.0, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}\n");
        self
    }

    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let h = Histogram::default();
        for ms in [3, 7, 7, 400, 60_000] {
            h.observe(Duration::from_millis(ms));
        }
        let text = Exposition::default()
            .histogram("w_seconds", "W.", &h)
            .labeled("p", "P.", Kind::Gauge, [("m", "a\"b\\c\nd".to_owned(), 1.0)])
            .finish();
        assert!(text.contains("w_seconds_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("w_seconds_bucket{le=\"0.01\"} 3\n"), "{text}");
        assert!(text.contains("w_seconds_bucket{le=\"0.5\"} 4\n"), "{text}");
        assert!(text.contains("w_seconds_bucket{le=\"30\"} 4\n"), "{text}");
        assert!(
            text.contains("w_seconds_bucket{le=\"+Inf\"} 5\nw_seconds_sum 60.417\nw_seconds_count 5\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE p gauge\np{m=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
    }

    #[tokio::test]
    async fn metrics_are_served_and_anything_else_is_not_found() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = probe.local_addr().unwrap();
        drop(probe);
        let shutdown = Shutdown::new();
        let render: Render = Arc::new(|| Exposition::default().counter("x_total", "An x.", 7).finish());
        let server = tokio::spawn(serve(address, render, shutdown.clone()));
        let get = |path: &'static str| async move {
            for _ in 0..50 {
                if let Ok(mut s) = tokio::net::TcpStream::connect(address).await {
                    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
                    let mut out = String::new();
                    s.read_to_string(&mut out).await.unwrap();
                    return out;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the metrics server did not start");
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("# TYPE x_total counter\nx_total 7\n"), "{ok}");
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
