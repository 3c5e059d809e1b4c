//! Reading whole log files offline (`statmsg parse --stats`, `statmsg analyze`): every
//! core on its own range of the file, each range read sequentially in small blocks into a reused
//! buffer (cache-sized, so the kernel's copy and the parse touch the same cache lines), ranges
//! and blocks cut at record boundaries so the result is exactly that of one pass.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use statmsg_schema::Record;

use statmsg_parse::{self as parse, Encoding, FileKind};

/// Bytes read per block.
const BLOCK: usize = 1 << 20;
/// Files smaller than this are read by one thread.
const PARALLEL_MIN: u64 = 8 << 20;
/// Window read around a range cut to find the record boundary.
const CUT_WINDOW: u64 = 256 << 10;

/// An open file, its length, kind and BOM length; the whole content when it is UTF-16
/// (transcoded whole: UTF-16 logs are rare and small).
struct Opened {
    file: File,
    len: u64,
    kind: FileKind,
    bom: usize,
    utf16: Option<Vec<u8>>,
}

fn open(path: &Path) -> std::io::Result<Opened> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(FileKind::DETECT_BYTES);
    file.by_ref().take(FileKind::DETECT_BYTES as u64).read_to_end(&mut head)?;
    let (kind, bom) = FileKind::detect(&head);
    let utf16 = if kind.encoding == Encoding::Utf16Le {
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        Some(bytes)
    } else {
        None
    };
    Ok(Opened { file, len, kind, bom, utf16 })
}

/// Parses `path` on this thread, calling `f` with every record in file order.
pub fn read_file(path: &Path, mut f: impl FnMut(u64, &Record<'_>)) -> std::io::Result<FileKind> {
    let Opened { len, kind, bom, utf16, .. } = open(path)?;
    match utf16 {
        Some(bytes) => parse::for_each_record(kind, &bytes[bom..], bom as u64, f),
        None => parse_range(path, kind, bom as u64, len, &mut f)?,
    }
    Ok(kind)
}

/// Parses `path` on up to `threads` threads. `make` creates one accumulator per range, `add`
/// feeds it records in file order; the accumulators come back in range order.
pub fn parse_file<A: Send>(
    path: &Path,
    threads: usize,
    make: impl Fn() -> A + Sync,
    add: impl Fn(&mut A, u64, &Record<'_>) + Sync,
) -> std::io::Result<(FileKind, Vec<A>)> {
    let Opened { mut file, len, kind, bom, utf16 } = open(path)?;
    if let Some(bytes) = utf16 {
        let mut acc = make();
        parse::for_each_record(kind, &bytes[bom..], bom as u64, |o, r| add(&mut acc, o, r));
        return Ok((kind, vec![acc]));
    }
    let threads = if len < PARALLEL_MIN { 1 } else { threads.max(1) };
    let mut cuts = vec![bom as u64];
    for k in 1..threads {
        // No boundary near a cut (a run of lines without trailer): the ranges merge.
        if let Some(cut) = boundary_near(&mut file, kind, len * k as u64 / threads as u64)? {
            if cut > *cuts.last().unwrap_or(&0) {
                cuts.push(cut);
            }
        }
    }
    cuts.push(len);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .windows(2)
            .map(|w| {
                let (start, end) = (w[0], w[1]);
                let (make, add) = (&make, &add);
                scope.spawn(move || {
                    let mut acc = make();
                    parse_range(path, kind, start, end, |o, r| add(&mut acc, o, r)).map(|()| acc)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("parser thread panicked"))))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok((kind, results))
}

/// The first record boundary at or after `near`, if one is within reach.
fn boundary_near(file: &mut File, kind: FileKind, near: u64) -> std::io::Result<Option<u64>> {
    let from = near.saturating_sub(CUT_WINDOW);
    file.seek(SeekFrom::Start(from))?;
    let mut window = Vec::with_capacity(2 * CUT_WINDOW as usize);
    file.by_ref().take(2 * CUT_WINDOW).read_to_end(&mut window)?;
    let at = parse::record_boundary(kind.format, &window, (near - from) as usize);
    Ok(at.map(|at| from + at as u64))
}

/// Parses `[start, end)` of the file in blocks, records in order with their file offsets.
fn parse_range(
    path: &Path,
    kind: FileKind,
    start: u64,
    end: u64,
    mut f: impl FnMut(u64, &Record<'_>),
) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut file = file.take(end - start);
    let mut buffer = vec![0u8; BLOCK];
    let (mut filled, mut base) = (0usize, start);
    loop {
        let n = read_full(&mut file, &mut buffer[filled..])?;
        filled += n;
        let at_end = filled < buffer.len();
        let parse_end =
            if at_end { filled } else { parse::last_record_boundary(kind.format, &buffer[..filled]) };
        if parse_end == 0 && !at_end {
            buffer.resize(buffer.len() * 2, 0); // a record larger than a block
            continue;
        }
        parse::for_each_record(kind, &buffer[..parse_end], base, &mut f);
        if at_end {
            return Ok(());
        }
        buffer.copy_within(parse_end..filled, 0);
        filled -= parse_end;
        base += parse_end as u64;
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_record_boundaries_is_not_cut_inside_a_line() {
        let text: String =
            (0..200_000).map(|i| format!("unframed line number {i} without any trailer\n")).collect();
        assert!(text.len() as u64 > PARALLEL_MIN);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.log");
        std::fs::write(&path, &text).unwrap();
        let (_, parts) = parse_file(&path, 2, || 0usize, |n: &mut usize, _, _| *n += 1).unwrap();
        assert_eq!(parts.iter().sum::<usize>(), 200_000);
    }

    #[test]
    fn ranges_and_blocks_give_exactly_the_records_of_one_pass() {
        let mut text = String::new();
        statmsg_parse::synth::wsyncmgr_log(20_000_000, 5, &mut text);
        text.insert(0, '\u{feff}');
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("WsyncMgr.log");
        std::fs::write(&path, &text).unwrap();
        let (_, whole) = parse::parse_file_bytes(text.as_bytes());
        let (_, parts) = parse_file(&path, 3, Vec::new, |v: &mut Vec<(u64, String)>, o, r| {
            v.push((o, r.text.to_string()));
        })
        .unwrap();
        assert_eq!(parts.len(), 3);
        let pieces: Vec<(u64, String)> = parts.into_iter().flatten().collect();
        assert_eq!(pieces.len(), whole.len());
        assert!(pieces.iter().zip(&whole).all(|(a, (o, r))| a.0 == *o && a.1 == r.text));
    }
}
