//! `influxdb2-probe URL LINES_FILE`: writes every line-protocol point of LINES_FILE (as exported
//! by bench.d/consume.py) to URL's /api/v2/write twice, once through the `influxdb2` crate
//! (points rebuilt with its `DataPoint` builder, as a user of the crate must), once as statmsg's
//! consumer does (the lines as they are, gzip, 5,000 a body, 4 requests in flight), and prints
//! both times. Fields: `i` suffix integer, quoted string, true/false boolean, else float.

use std::time::Instant;

use futures::stream::{self, StreamExt};
use influxdb2::models::DataPoint;

const POINTS_PER_BODY: usize = 5000;
const IN_FLIGHT: usize = 4;

fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let (mut parts, mut current, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in text.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
            current.push(c);
        } else if c == separator && !quoted {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn data_point(line: &str) -> DataPoint {
    let sections = split_unescaped(line, ' ');
    let (head, fields, time) = (&sections[0], &sections[1], &sections[2]);
    let mut head = split_unescaped(head, ',').into_iter();
    let mut point = DataPoint::builder(head.next().unwrap_or_default());
    for tag in head {
        if let Some((k, v)) = tag.split_once('=') {
            point = point.tag(k, v);
        }
    }
    for field in split_unescaped(fields, ',') {
        let Some((k, v)) = field.split_once('=') else { continue };
        point = if let Some(s) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            point.field(k, s.to_owned())
        } else if let Some(i) = v.strip_suffix('i').and_then(|v| v.parse::<i64>().ok()) {
            point.field(k, i)
        } else if v == "true" || v == "false" {
            point.field(k, v == "true")
        } else {
            point.field(k, v.parse::<f64>().unwrap_or_default())
        };
    }
    point.timestamp(time.parse::<i64>().unwrap_or_default()).build().expect("a point with a field")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("memory");
    e.finish().expect("memory")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, file) = (&args[1], &args[2]);
    let lines: Vec<String> =
        std::fs::read_to_string(file).expect("lines file").lines().map(str::to_owned).collect();

    // Twice each, alternately: the first writes create the series (VictoriaMetrics' costly part),
    // the second rounds compare the clients.
    let client = influxdb2::Client::new(url.as_str(), "bench", "token");
    let http = reqwest::Client::new();
    let write = format!("{url}/api/v2/write?bucket=statmsg&org=bench&precision=ns");
    let mut rounds = Vec::new();
    for round in 1..=2 {
        let (plain_time, plain_failed) = post_lines(&http, &write, &lines).await;
        let (crate_time, building, failed) = write_with_crate(&client, &lines).await;
        println!(
            "round {round}: {} points to {url}/api/v2/write: line protocol as statmsg posts it {:.3} s ({plain_failed} failed); \
             influxdb2 crate {:.3} s (of which building DataPoints {:.3} s; {failed} writes failed)",
            lines.len(),
            plain_time,
            crate_time,
            building
        );
        rounds.push((plain_time, crate_time));
    }
    let (plain_time, crate_time) = rounds[1];
    println!("influxdb2 takes {:.2}x the time of statmsg's writing (second round)", crate_time / plain_time);
}

/// The lines as statmsg's consumer posts them: gzip, 5,000 a body, 4 in flight. Seconds, failures.
async fn post_lines(http: &reqwest::Client, write: &str, lines: &[String]) -> (f64, usize) {
    let started = Instant::now();
    let bodies: Vec<Vec<u8>> =
        lines.chunks(POINTS_PER_BODY).map(|c| gzip((c.join("\n") + "\n").as_bytes())).collect();
    let posted: Vec<_> = stream::iter(bodies)
        .map(|body| http.post(write).header("Content-Encoding", "gzip").body(body).send())
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let failed = posted.iter().filter(|r| !r.as_ref().is_ok_and(|r| r.status().is_success())).count();
    (started.elapsed().as_secs_f64(), failed)
}

/// The crate's own way: DataPoints built from the lines, a stream per write, 4 writes in flight.
/// Seconds, seconds spent building, failures.
async fn write_with_crate(client: &influxdb2::Client, lines: &[String]) -> (f64, f64, usize) {
    let started = Instant::now();
    let built: Vec<Vec<DataPoint>> =
        lines.chunks(POINTS_PER_BODY).map(|c| c.iter().map(|l| data_point(l)).collect()).collect();
    let building = started.elapsed().as_secs_f64();
    let results: Vec<_> = stream::iter(built)
        .map(|points| client.write("influxdb2", stream::iter(points)))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("influxdb2: {e}");
    }
    (started.elapsed().as_secs_f64(), building, results.iter().filter(|r| r.is_err()).count())
}
