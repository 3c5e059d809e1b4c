//! The report as a person sees it: rendered by a real browser (Debian's headless `chromium`,
//! installed by `deploy/local/install`). The page must load without errors, every chart must
//! have drawn its data, and the screenshot must show them (not a blank page). Ignored by a
//! plain `cargo test` (it needs chromium); `.ci/run` runs it.

#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::path::Path;
use std::process::Command;

fn statmsg(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_statmsg")).args(args).output().unwrap();
    assert!(out.status.success(), "statmsg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr"])
        .args(["--no-first-run", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", page.with_file_name("chromium-profile").display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium (deploy/local/install installs it)");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Width, height and RGB pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what chromium
/// writes).
fn decode_png(bytes: &[u8]) -> (usize, usize, Vec<[u8; 3]>) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut at, mut idat, mut header) = (8, Vec::new(), None);
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let (kind, data) = (&bytes[at + 4..at + 8], &bytes[at + 8..at + 8 + len]);
        match kind {
            b"IHDR" => header = Some(data.to_vec()),
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        at += 12 + len;
    }
    let header = header.unwrap();
    let width = u32::from_be_bytes(header[0..4].try_into().unwrap()) as usize;
    let height = u32::from_be_bytes(header[4..8].try_into().unwrap()) as usize;
    assert_eq!((header[8], header[12]), (8, 0), "8 bits per channel, not interlaced");
    let channels = match header[9] {
        2 => 3,
        6 => 4,
        other => panic!("colour type {other}"),
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
    let stride = width * channels;
    let mut previous = vec![0u8; stride];
    let mut pixels = Vec::with_capacity(width * height);
    for row in raw.chunks(stride + 1).take(height) {
        let (filter, line) = (row[0], &row[1..]);
        let mut current = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { current[i - channels] } else { 0 };
            let b = previous[i];
            let c = if i >= channels { previous[i - channels] } else { 0 };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) =
                        ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            current[i] = line[i].wrapping_add(predicted);
        }
        pixels.extend(current.chunks(channels).map(|p| [p[0], p[1], p[2]]));
        previous = current;
    }
    (width, height, pixels)
}

#[test]
#[ignore = "needs chromium: deploy/local/install (run by .ci/run)"]
fn a_browser_renders_the_report_with_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    statmsg(&[
        "simulate",
        "--sites",
        "3",
        "--days",
        "120",
        "--growth-percent-per-month",
        "P01=6",
        "--out",
        sim.to_str().unwrap(),
    ]);
    let page = dir.path().join("report.html");
    statmsg(&["report", "-o", page.to_str().unwrap(), sim.to_str().unwrap()]);

    // Loaded, with every chart's data in the rendered document.
    let dom = chromium(&["--dump-dom"], &page);
    let (dom, log) = (String::from_utf8_lossy(&dom.stdout), String::from_utf8_lossy(&dom.stderr));
    assert!(!log.contains("CONSOLE") && !log.contains("Uncaught"), "the page logged errors: {log}");
    let charts: Vec<&str> = dom.split("<svg").skip(1).map(|s| s.split("</svg>").next().unwrap()).collect();
    assert_eq!(charts.len(), 3 * 4, "four charts per site");
    for chart in &charts {
        assert!(chart.contains("class=\"data "), "a chart without data: {}", &chart[..200.min(chart.len())]);
        assert!(chart.contains("d=\"M"), "a chart whose data drew no path");
    }

    // Drawn: the screenshot shows the charts' colours, not a blank page.
    let shot = dir.path().join("report.png");
    chromium(&["--window-size=1100,2600", &format!("--screenshot={}", shot.display())], &page);
    let (width, height, pixels) = decode_png(&std::fs::read(&shot).unwrap());
    assert_eq!((width, height), (1100, 2600));
    let share =
        |colour: [u8; 3]| pixels.iter().filter(|p| **p == colour).count() as f64 / pixels.len() as f64;
    let not_white = pixels.iter().filter(|p| **p != [255, 255, 255]).count() as f64 / pixels.len() as f64;
    assert!(not_white > 0.03, "the page is nearly blank: {not_white:.4} of it drawn");
    // The run dots (#0969da), failed-run marks and failure bars (#cf222e), the site database
    // phase (#d4760b).
    for (name, colour) in [
        ("run dots", [0x09, 0x69, 0xda]),
        ("failures", [0xcf, 0x22, 0x2e]),
        ("site database phase", [0xd4, 0x76, 0x0b]),
    ] {
        assert!(share(colour) > 0.0005, "{name} not drawn: {:.5} of the pixels", share(colour));
    }
}
