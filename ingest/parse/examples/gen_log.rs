//! Writes a realistic synthetic WsyncMgr.log of about the given size (benchmarks, `bench`).
//!
//! `cargo run --release -p statmsg-parse --example gen_log -- 200000000 /tmp/WsyncMgr-200MB.log`

use std::io::Write as _;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let bytes: usize = args.next().and_then(|b| b.parse().ok()).unwrap_or(100_000_000);
    let path = args.next().unwrap_or_else(|| "WsyncMgr-synthetic.log".to_owned());
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut seed = 1;
    let mut written = 0;
    while written < bytes {
        let mut text = String::with_capacity(16 << 20);
        statmsg_parse::synth::wsyncmgr_log((bytes - written).min(16 << 20), seed, &mut text);
        file.write_all(text.as_bytes())?;
        written += text.len();
        seed += 1;
    }
    file.flush()?;
    eprintln!("{path}: {written} bytes");
    Ok(())
}
